package pb

// The generated onnx.pb.go is committed. To regenerate it after editing onnx.proto, run
// `make proto`, which executes, in this directory:
//
//	protoc --plugin=protoc-gen-go=$(GOBIN)/protoc-gen-go --go_out=. --go_opt=paths=source_relative onnx.proto
//
// with protoc 3.21 (Debian's protobuf-compiler) and protoc-gen-go v1.36.12, the same version as
// the google.golang.org/protobuf runtime in go.mod:
//
//	GOBIN=/root/go/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

//go:generate protoc --go_out=. --go_opt=paths=source_relative onnx.proto
