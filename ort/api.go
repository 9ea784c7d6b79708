package ort

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Indices into ONNX Runtime's OrtApi function table (onnxruntime_c_api.h, struct OrtApi). The
// table only grows at its end from one release to the next, so these positions hold for every
// library that serves the API version requested; a wrong index calls the wrong function, which
// the tests catch by running a model and comparing its outputs with chanopt's engine.
const (
	fnGetErrorCode                   = 1
	fnGetErrorMessage                = 2
	fnCreateEnv                      = 3
	fnCreateSession                  = 7
	fnCreateSessionFromArray         = 8
	fnRun                            = 9
	fnCreateSessionOptions           = 10
	fnEnableProfiling                = 14
	fnSetIntraOpNumThreads           = 24
	fnSetInterOpNumThreads           = 25
	fnSessionGetInputCount           = 30
	fnSessionGetOutputCount          = 31
	fnSessionGetInputTypeInfo        = 33
	fnSessionGetInputName            = 36
	fnSessionGetOutputName           = 37
	fnCreateTensorWithDataAsOrtValue = 49
	fnGetTensorMutableData           = 51
	fnCastTypeInfoToTensorInfo       = 55
	fnGetTensorElementType           = 60
	fnGetDimensionsCount             = 61
	fnGetDimensions                  = 62
	fnGetTensorTypeAndShape          = 65
	fnCreateCpuMemoryInfo            = 69
	fnAllocatorFree                  = 76
	fnGetAllocatorWithDefaultOptions = 78
	fnReleaseEnv                     = 92
	fnReleaseStatus                  = 93
	fnReleaseMemoryInfo              = 94
	fnReleaseSession                 = 95
	fnReleaseValue                   = 96
	fnReleaseTypeInfo                = 98
	fnReleaseTensorTypeAndShapeInfo  = 99
	fnReleaseSessionOptions          = 100
	fnSessionEndProfiling            = 110
	tableEntriesRead                 = 111 // entries copied out of the table: the highest index used + 1
	minAPIVersion                    = 14  // ONNX Runtime 1.14: every entry above exists there
	loggingLevelError                = 3   // ORT_LOGGING_LEVEL_ERROR: keep ONNX Runtime's warnings off stderr
	allocatorArena                   = 1   // OrtArenaAllocator
	memTypeDefault                   = 0   // OrtMemTypeDefault
	elemFloat                        = 1   // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
	elemInt64                        = 7   // ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64
	dimsMax                          = 16  // no CNN tensor has more dims; bounds the GetDimensions buffer
)

// api is a loaded library: its function table, the process's one OrtEnv, and the objects every
// session shares (CPU memory info for tensors over Go memory, the default allocator for names).
type api struct {
	path    string
	version string
	fn      [tableEntriesRead]uintptr
	message func(status uintptr) string // GetErrorMessage, registered with purego for its char* result
	env     uintptr
	memInfo uintptr
	alloc   uintptr
}

// errorCodeNames are OrtErrorCode's names, so an error says what kind of failure it was.
var errorCodeNames = []string{"OK", "FAIL", "INVALID_ARGUMENT", "NO_SUCHFILE", "NO_MODEL", "ENGINE_ERROR",
	"RUNTIME_EXCEPTION", "INVALID_PROTOBUF", "MODEL_LOADED", "NOT_IMPLEMENTED", "INVALID_GRAPH", "EP_FAIL"}

// open loads the library at path (a file or a name the dynamic linker resolves) and prepares the
// environment. The library is never unloaded: ONNX Runtime's threads outlive any one session.
func open(path string) (*api, error) {
	base, err := entryPoint(path)
	if err != nil {
		return nil, err
	}
	var getAPIBase func() *[2]uintptr
	purego.RegisterFunc(&getAPIBase, base)
	entries := getAPIBase()
	if entries == nil || entries[0] == 0 || entries[1] == 0 {
		return nil, fmt.Errorf("%s: OrtGetApiBase returned no table", path)
	}
	var getAPI func(version uint32) *[tableEntriesRead]uintptr
	var versionString func() string
	purego.RegisterFunc(&getAPI, entries[0])
	purego.RegisterFunc(&versionString, entries[1])
	a := &api{path: path, version: versionString()}
	// Ask for the API of the library's own release (1.30 serves 30), or the oldest one that has
	// every entry used here when the version string is unusual.
	want := uint32(minAPIVersion)
	if parts := strings.Split(a.version, "."); len(parts) >= 2 && parts[0] == "1" {
		if minor, err := strconv.Atoi(parts[1]); err == nil && minor > minAPIVersion {
			want = uint32(minor)
		}
	}
	table := getAPI(want)
	if table == nil && want != minAPIVersion {
		table = getAPI(minAPIVersion)
	}
	if table == nil {
		return nil, fmt.Errorf("%s: ONNX Runtime %s is older than 1.%d, the oldest release chanopt can drive", path, a.version, minAPIVersion)
	}
	a.fn = *table
	purego.RegisterFunc(&a.message, a.fn[fnGetErrorMessage])
	logID := cstring("chanopt")
	if err := a.call(fnCreateEnv, loggingLevelError, uintptr(unsafe.Pointer(&logID[0])), uintptr(unsafe.Pointer(&a.env))); err != nil {
		return nil, fmt.Errorf("%s: create environment: %w", path, err)
	}
	if err := a.call(fnCreateCpuMemoryInfo, allocatorArena, memTypeDefault, uintptr(unsafe.Pointer(&a.memInfo))); err != nil {
		return nil, fmt.Errorf("%s: CPU memory info: %w", path, err)
	}
	if err := a.call(fnGetAllocatorWithDefaultOptions, uintptr(unsafe.Pointer(&a.alloc))); err != nil {
		return nil, fmt.Errorf("%s: default allocator: %w", path, err)
	}
	return a, nil
}

// call calls the table entry fn, whose C result is an OrtStatus* (NULL on success), and turns a
// failure into an error carrying ONNX Runtime's code and message. Pointer arguments must be passed
// as uintptr(unsafe.Pointer(..)) in the call: go:uintptrescapes keeps what they point to alive
// and in place until the call returns.
//
//go:uintptrescapes
func (a *api) call(fn int, args ...uintptr) error {
	status, _, _ := purego.SyscallN(a.fn[fn], args...)
	if status == 0 {
		return nil
	}
	code, _, _ := purego.SyscallN(a.fn[fnGetErrorCode], status)
	msg := a.message(status)
	purego.SyscallN(a.fn[fnReleaseStatus], status)
	name := strconv.Itoa(int(code))
	if int(code) < len(errorCodeNames) {
		name = errorCodeNames[code]
	}
	return fmt.Errorf("%s: %s", name, oneLine(msg))
}

// release calls a Release* entry, which takes one object and returns nothing; NULL is ignored.
func (a *api) release(fn int, obj uintptr) {
	if obj != 0 {
		purego.SyscallN(a.fn[fn], obj)
	}
}

// cstring is a NUL-terminated copy of s for C to read during one call.
func cstring(s string) []byte { return append([]byte(s), 0) }

// goString copies the NUL-terminated C string at p.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// oneLine joins a multi-line message so errors stay on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
