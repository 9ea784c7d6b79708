package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
)

// ErrUnavailable says ONNX Runtime cannot be used on this machine; errors.Is finds it in the error
// Available returns, which also says why.
var ErrUnavailable = errors.New("ONNX Runtime is not available")

// EnvLibrary is the environment variable naming the shared library to load.
const EnvLibrary = "CHANOPT_ORT_LIB"

// loaded is the process's one library. It is package state because a process can hold only one
// ONNX Runtime environment, whose thread pools every session shares; loading happens once, on
// first use or through Load.
var loaded struct {
	sync.Mutex
	done bool
	api  *api
	err  error
}

// Load loads ONNX Runtime from path, or, when path is "", from $CHANOPT_ORT_LIB or the usual
// places. Only the first call that succeeds (or the first automatic attempt) decides: a later call
// with a different path fails rather than mixing two libraries in one process.
func Load(path string) error {
	loaded.Lock()
	defer loaded.Unlock()
	if loaded.done {
		if path != "" && loaded.api != nil && path != loaded.api.path {
			return fmt.Errorf("%w: %s is loaded already; cannot also load %s", ErrUnavailable, loaded.api.path, path)
		}
		if path == "" || loaded.api != nil {
			return loaded.err
		}
		// An explicit path after a failed automatic attempt gets its own try.
	}
	loaded.done = true
	loaded.api, loaded.err = load(path)
	return loaded.err
}

// Available reports whether ONNX Runtime can be used: nil, or an error wrapping ErrUnavailable
// that says which library was tried and why it failed.
func Available() error { return Load("") }

// Version is the loaded library's version string ("1.30.0") and its path, or empty strings when
// none is loaded.
func Version() (version, path string) {
	loaded.Lock()
	defer loaded.Unlock()
	if loaded.api == nil {
		return "", ""
	}
	return loaded.api.version, loaded.api.path
}

// lib returns the loaded library, loading it on first use.
func lib() (*api, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	loaded.Lock()
	defer loaded.Unlock()
	return loaded.api, nil
}

// load tries the explicit path, then $CHANOPT_ORT_LIB, then the usual places.
func load(path string) (*api, error) {
	if path == "" {
		if env := os.Getenv(EnvLibrary); env != "" {
			a, err := loadFile(env)
			if err != nil {
				return nil, fmt.Errorf("%w: $%s: %v", ErrUnavailable, EnvLibrary, err)
			}
			return a, nil
		}
	}
	if path != "" {
		a, err := loadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return a, nil
	}
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		return nil, fmt.Errorf("%w: no binding for %s", ErrUnavailable, runtime.GOOS)
	}
	var firstErr error
	for _, c := range candidates() {
		a, err := loadFile(c)
		if err == nil {
			return a, nil
		}
		if firstErr == nil && !errors.Is(err, errNotFound) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, firstErr)
	}
	return nil, fmt.Errorf("%w: no libonnxruntime found (set $%s or pass --ort-lib; `make ort` installs one)", ErrUnavailable, EnvLibrary)
}

// errNotFound marks a candidate that does not exist, as opposed to one that exists and fails.
var errNotFound = errors.New("not found")

// loadFile loads one candidate: a path, or a bare name for the dynamic linker to resolve.
func loadFile(path string) (*api, error) {
	if filepath.Base(path) != path {
		if _, err := os.Stat(path); err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("%s: %w", path, errNotFound)
			}
			return nil, err
		}
	}
	a, err := open(path)
	if err != nil && filepath.Base(path) == path {
		return nil, fmt.Errorf("%s: %w", path, errNotFound) // the dynamic linker did not find the name
	}
	return a, err
}

// candidates are the usual places, most specific first: names the dynamic linker resolves through
// its cache and LD_LIBRARY_PATH, the standard folders, then what `make ort` installed.
func candidates() []string {
	names := []string{"libonnxruntime.so.1", "libonnxruntime.so"}
	if runtime.GOOS == "darwin" {
		names = []string{"libonnxruntime.dylib"}
	}
	out := append([]string(nil), names...)
	for _, dir := range []string{"/usr/local/lib", "/usr/lib", "/usr/lib/" + runtime.GOARCH + "-linux-gnu", "/usr/lib64"} {
		for _, n := range names {
			out = append(out, filepath.Join(dir, n))
		}
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if home, err := os.UserHomeDir(); err == nil {
		out = append(out, cachedLibraries(filepath.Join(home, ".cache", "chanopt"))...)
	}
	if cache != "" {
		out = append(out, cachedLibraries(filepath.Join(cache, "chanopt"))...)
	}
	return out
}

// cachedLibraries finds libraries under dir/ort-VERSION (newest version first): the npm package
// `make ort` installs, or an unpacked release archive.
func cachedLibraries(dir string) []string {
	var found []string
	for _, pattern := range []string{
		"ort-*/node_modules/onnxruntime-node/bin/napi-v*/" + runtime.GOOS + "/*/libonnxruntime.so.1",
		"ort-*/lib/libonnxruntime.so.1",
		"ort-*/lib/libonnxruntime.so",
		"ort-*/*/lib/libonnxruntime.so.1",
	} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		found = append(found, m...)
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i] > found[j] })
	return found
}
