package dataset

import (
	"strings"
	"testing"
)

// TestHugeHeadersRefusedUpFront: a header that claims more images than memory can hold is
// refused before anything is read, naming the file, for IDX and .npy alike.
func TestHugeHeadersRefusedUpFront(t *testing.T) {
	opt := Options{Channels: 1, Height: 256, Width: 256}
	dir := t.TempDir()
	for _, c := range []struct{ name, file string }{
		{"IDX", writeFile(t, dir, "huge.idx", idxBytes(idxImages, []uint32{1 << 31, 256, 256}, ramp(64, 0)))},
		{"npy", writeFile(t, dir, "huge.npy", npyBytes("<f4", []int{1 << 31, 1, 256, 256}, ramp(64, 0)))},
	} {
		_, err := Load(c.file, "", opt)
		if err == nil || !strings.Contains(err.Error(), "more than") || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: got %v, want a refusal naming the file and the limit", c.name, err)
		}
	}
	if l := floatLimit(); l <= 0 || l > maxFloats {
		t.Errorf("floatLimit %d outside (0, %d]", l, maxFloats)
	}
}
