# chanopt: `make demo` and `make test` do all set-up on a fresh Debian machine.
SHELL := /bin/bash
GO ?= go
CACHE ?= $(HOME)/.cache/chanopt
ORT_VERSION := 1.30.0
ORT_DIR := $(CACHE)/ort-$(ORT_VERSION)
ORT_LIB := $(ORT_DIR)/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1
ZOO := $(CACHE)/zoo
PHOTOS := $(CACHE)/photos
FOREIGN := $(CACHE)/foreign
PY := /usr/bin/python3
GOBIN ?= $(shell $(GO) env GOPATH)/bin
BIN := bin/chanopt
TEST_ENV := CHANOPT_ORT_LIB=$(ORT_LIB) CHANOPT_ZOO=$(ZOO) CHANOPT_FOREIGN=$(FOREIGN) CHANOPT_PYTHON=$(PY) CHANOPT_ENGINE_MODELS="$(ZOO)/*.onnx"

.PHONY: build test demo bench fuzz proto ort lint deps zoo photos large-test models models-large golden clean

build:
	$(GO) build -o $(BIN) ./cmd/chanopt

deps:
	@scripts/deps.sh

ort:
	@scripts/ort.sh $(ORT_DIR) $(ORT_VERSION)

# torchvision architectures (random init) and small models in other exporters' styles, generated
# into the cache, never committed; existing files are kept.
zoo: deps
	@mkdir -p $(ZOO) $(FOREIGN)
	$(PY) models/zoo/export_zoo.py $(ZOO)
	$(PY) models/foreign/make_foreign.py $(FOREIGN)

# 1,000 RGB JPEGs at 224×224 in class folders, made from Fashion-MNIST, for the real-size bench.
photos: deps
	$(PY) models/zoo/make_photos.py $(PHOTOS) 1000

# The labelled held-out set of the trained real-size model (models/large/resnet18q.onnx): 2,000
# Fashion-MNIST test images rendered as `make photos` renders its JPEGs, at 112×112, uint8 .npy.
LARGE_TEST := $(CACHE)/large-test
large-test: deps
	test -f $(LARGE_TEST)/labels.npy || $(PY) models/train/train_large.py --test-dir $(LARGE_TEST) --test-set-only

test: deps ort zoo lint
	$(TEST_ENV) $(GO) test -tags ort -timeout 25m ./...

demo: deps build
	$(BIN) inspect models/resnet8.onnx
	@mkdir -p demo-out
	$(BIN) shrink models/resnet8.onnx --macs 0.5 --data models/data/calib-images-idx3-ubyte.gz \
	  -o demo-out/resnet8.slim.onnx --report demo-out/report.json --search uniform --epochs 3
	$(BIN) eval demo-out/resnet8.slim.onnx --data models/data/eval-images-idx3-ubyte.gz \
	  --labels models/data/eval-labels-idx1-ubyte.gz --teacher models/resnet8.onnx

bench: deps ort zoo photos large-test build
	$(TEST_ENV) CHANOPT_PHOTOS=$(PHOTOS) CHANOPT_LARGE_TEST=$(LARGE_TEST) $(GO) run -tags ort ./cmd/chanopt-bench $(if $(ONLY),-only $(ONLY))

# Every fuzz target of the repository (func FuzzX in a _test.go file), FUZZTIME each.
FUZZTIME ?= 60s
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$dir $$target for $(FUZZTIME)"; \
	    $(GO) test $$dir -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) || exit 1; \
	  done; \
	done

proto:
	@test -x $(GOBIN)/protoc-gen-go || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	cd onnx/pb && protoc --plugin=protoc-gen-go=$(GOBIN)/protoc-gen-go --go_out=. --go_opt=paths=source_relative onnx.proto

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags ort ./...

models: deps ort
	$(PY) models/train/make_data.py
	for m in resnet8 densenet mobilenetv2_se resnext vgg; do $(PY) models/train/train.py --model $$m || exit 1; done
	for m in unet embed; do $(PY) models/train/train_dense.py --model $$m || exit 1; done
	ORT_NODE_MODULES=$(ORT_DIR)/node_modules node models/train/ort_eval.mjs --check16 models/resnet8.onnx models/resnet8_bn.onnx models/densenet.onnx models/mobilenetv2_se.onnx models/resnext.onnx models/vgg.onnx

# The real-size trained model (about 25 minutes of training on 2 cores, not part of `models`):
# ResNet-18 layout at 3×112×112, written to models/large/ with its held-out set in the cache.
models-large: deps ort
	$(PY) models/train/train_large.py --test-dir $(LARGE_TEST)
	ORT_NODE_MODULES=$(ORT_DIR)/node_modules node models/zoo/ort_check.mjs models/large resnet18q

# Rewrites the golden files of the packages that keep them (review the diff before committing).
golden: deps ort zoo
	$(TEST_ENV) $(GO) test -tags ort ./cmd/chanopt ./engine -update

clean:
	rm -rf bin
