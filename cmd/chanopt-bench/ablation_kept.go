package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// The full ablation is hours of machine time (models/README.md), more than one sitting, so each
// finished run is appended to a results file and a later invocation of the same build with the
// same settings skips the runs it finds there. Runs are deterministic (a fixed number of
// proposals, no time limit, seeded), so a kept result is the one a fresh run would print.

// ablationResult is one finished run: a model shrunk by one variant at one seed.
type ablationResult struct {
	Key       string  `json:"key"`
	Model     string  `json:"model"`
	Variant   string  `json:"variant"`
	Seed      uint64  `json:"seed"`
	Agreement float64 `json:"agreement"` // held-back top-1 agreement with the original, %
	Accuracy  float64 `json:"accuracy"`  // Fashion-MNIST test accuracy, %
	MACs      float64 `json:"macs"`      // kept, as a share of the original's
	Seconds   float64 `json:"seconds"`
	Detail    string  `json:"detail"` // the search's evaluations, the judge's choice, the adaptation
	Code      string  `json:"code"`   // sourceDigest of the code that ran it
	Date      string  `json:"date"`
	Load      string  `json:"load"` // the load average when it finished
}

// ablationKept is the results file of one build: what it holds, keyed by ablationKept.key.
type ablationKept struct {
	path, code string
	// readOnly is set when the results read are another build's (CHANOPT_ABLATION_CODE): they
	// are printed, and runs missing from the file are reported missing, never run by this build
	// under that build's name.
	readOnly bool
	done     map[string]ablationResult
}

// defaultAblationResults is the results file, committed: the runs take more hours than one
// sitting, and the machines a later sitting gets start with an empty cache.
const defaultAblationResults = "models/ablation.jsonl"

// openAblationResults reads $CHANOPT_ABLATION_RESULTS (default models/ablation.jsonl under the
// module root, the working directory). Results are keyed by the code that produced them: a digest
// of the module's Go sources in the working directory, which is what `make bench` (go run) builds
// the bench from. (Build information would name the commit, but these machines set
// GOFLAGS=-buildvcs=false and go run never stamps it.) $CHANOPT_ABLATION_CODE names another
// build's digest, to print the results that build kept (read only). why says why nothing is kept
// (the returned value then keeps nothing).
func openAblationResults(c ablationConfig) (k *ablationKept, why string) {
	k = &ablationKept{done: map[string]ablationResult{}}
	code, err := sourceDigest(".")
	if err != nil {
		return k, fmt.Sprintf("the sources could not be read to key results by: %v", err)
	}
	path := os.Getenv("CHANOPT_ABLATION_RESULTS")
	if path == "" {
		path = defaultAblationResults
	}
	k.path, k.code = path, code
	if other := os.Getenv("CHANOPT_ABLATION_CODE"); other != "" && other != code {
		k.code, k.readOnly = other, true
	}
	if err := readKept(k); err != nil {
		return &ablationKept{done: map[string]ablationResult{}}, err.Error()
	}
	return k, ""
}

// sourceDigest hashes go.mod, go.sum and every non-test Go file under the module root dir, in
// path order: the same digest means the same code.
func sourceDigest(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("not run from the module's root: %w", err)
	}
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != dir && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(p), len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:16], nil
}

// readKept reads the results in k.path, if the file is there.
func readKept(k *ablationKept) error {
	f, err := os.Open(k.path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var r ablationResult
		// A line cut short by a killed run does not parse and is run again.
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Key != "" {
			k.done[r.Key] = r
		}
	}
	return sc.Err()
}

// key names a run by everything its result depends on: the build, the model's bytes, the
// variant, the seed and the settings.
func (k *ablationKept) key(c ablationConfig, modelHash, variant string, seed uint64) string {
	if k.path == "" {
		return ""
	}
	s := fmt.Sprintf("%s|%s|%s|%d|%d|%d|%g|%g|%s", k.code, modelHash, variant, seed, c.iterations, c.samples, c.holdBack, c.epochs, c.tune)
	return fmt.Sprintf("%x", sha256.Sum256([]byte(s)))
}

// add appends a finished run to the file (nothing when results are not kept).
func (k *ablationKept) add(key string, r ablationResult) error {
	if k.path == "" || key == "" {
		return nil
	}
	if k.readOnly {
		return fmt.Errorf("the results of build %s are read only here", k.code)
	}
	r.Key, r.Code, r.Date, r.Load = key, k.code, time.Now().UTC().Format(time.RFC3339), loadAverage()
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(k.path, os.O_APPEND|os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	// After a line cut short by a killed run, start a new one.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	k.done[key] = r
	return f.Close()
}

// ablationRun shrinks m to half its MACs with one variant at one seed and judges the result.
func ablationRun(c ablationConfig, name string, m *onnx.Model, test, all *dataset.Set, variant string, seed uint64) (ablationResult, error) {
	opt := optimizer.DefaultOptions()
	opt.Budget = optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}
	opt.Data, opt.HoldBack, opt.Seed = all, c.holdBack, seed
	opt.Time, opt.RoundTo, opt.Iterations = 0, 1, c.iterations
	opt.Epochs, opt.DistillTime = c.epochs, c.tune
	opt.Runtime = optimizer.EngineRuntime{}
	switch variant {
	case "uniform":
		opt.Search = optimizer.SearchUniform
	case variantAdapt:
		opt.Adapt = true
	default:
		opt.Guide = optimizer.Guide(variant)
	}
	t0 := time.Now()
	res, err := optimizer.Shrink(context.Background(), m, opt)
	if err != nil {
		return ablationResult{}, err
	}
	acc, err := testAccuracy(res.Model, test)
	if err != nil {
		return ablationResult{}, err
	}
	var detail string
	if st := res.Report.SearchStats; st != nil {
		detail = fmt.Sprintf(", %d evaluations", st.Evaluations)
		if f := st.Finalists; f != nil && f.ChoseStart {
			detail += ", the finalists' judge kept the filled uniform start"
		}
	}
	if a := res.Report.Distill.Adapt; a != nil {
		detail += fmt.Sprintf(", %d reallocations, kept after %d", len(a.Reallocations), a.KeptAfter)
	}
	return ablationResult{Model: name, Variant: variant, Seed: seed,
		Agreement: 100 * res.Report.Distill.Final().Top1, Accuracy: 100 * acc,
		MACs:    float64(res.Report.After.MACs) / float64(res.Report.Before.MACs),
		Seconds: time.Since(t0).Seconds(), Detail: detail}, nil
}
