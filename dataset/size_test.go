package dataset

import (
	"image/color"
	"path/filepath"
	"strings"
	"testing"
)

// TestSizeFromData: Height and Width 0 take the data's own size (a model with symbolic spatial
// dims): a folder's first image in sorted order (the others resized to it), an IDX or .npy file's
// header; one of the two alone is still an error.
func TestSizeFromData(t *testing.T) {
	dir := t.TempDir()
	grey := color.NRGBA{90, 90, 90, 255}
	folder := filepath.Join(dir, "photos")
	writeFile(t, folder, "a.png", pngBytes(t, constImage(12, 5, grey))) // first: sets the size
	writeFile(t, folder, "b.png", pngBytes(t, constImage(7, 9, grey)))  // resized to 12×5
	idx := writeFile(t, dir, "images.idx", idxBytes(idxImages, []uint32{2, 4, 6}, ramp(2*4*6, 0)))
	npy := writeFile(t, dir, "images.npy", npyBytes("|u1", []int{3, 1, 10, 3}, ramp(3*10*3, 1)))
	tests := []struct {
		name       string
		path       string
		opt        Options
		n, h, w    int
		wantErrSub string
	}{
		{"folder", folder, Options{Channels: 3}, 2, 5, 12, ""},
		{"folder grey", folder, Options{Channels: 1}, 2, 5, 12, ""},
		{"idx", idx, Options{Channels: 1}, 2, 4, 6, ""},
		{"npy", npy, Options{Channels: 1}, 3, 10, 3, ""},
		{"fixed size still checked", idx, Options{Channels: 1, Height: 5, Width: 6}, 0, 0, 0, "the model takes 5×6"},
		{"height alone", folder, Options{Channels: 3, Height: 5}, 0, 0, 0, "bad model input shape"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(tc.path, "", tc.opt)
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.N != tc.n || s.H != tc.h || s.W != tc.w || len(s.Floats()) != tc.n*s.C*tc.h*tc.w {
				t.Errorf("N=%d H=%d W=%d (%d values), want N=%d H=%d W=%d", s.N, s.H, s.W, len(s.Floats()), tc.n, tc.h, tc.w)
			}
		})
	}
}
