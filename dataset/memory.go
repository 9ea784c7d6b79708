package dataset

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// floatLimit is the most float32 values a Set may hold: half the memory available when the data
// is loaded (the model and its activations need the rest), and never more than maxFloats. Where
// the available memory cannot be read, maxFloats.
func floatLimit() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return maxFloats
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil || kb <= 0 {
			return maxFloats
		}
		return int(min(kb*1024/4/2, maxFloats))
	}
	return maxFloats
}

// checkFits refuses n records of per values each when they exceed floatLimit, before any is read.
func checkFits(name string, n, per int) error {
	limit := floatLimit()
	if per > 0 && n > limit/per {
		return fmt.Errorf("data: %s: %d images of %d values are more than %d values (half the memory available); use --samples", name, n, per, limit)
	}
	return nil
}
