package dataset

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the decoders image.Decode uses
	_ "image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/image/draw"
)

// maxPixels bounds the size of one decoded image (a 128-megapixel RGBA image is 512 MB).
const maxPixels = 1 << 27

// imageFile is one image of a folder: its path (under the folder as the user named it) and the
// index of its class folder (-1 for files at the top).
type imageFile struct {
	path  string
	class int
}

// isImage reports whether a file name has a PNG or JPEG extension.
func isImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// listImages finds the images under root in a sorted depth-first walk. Top-level folders (also
// when symlinked) are class candidates; deeper symlinked folders are not followed.
func listImages(root string) (files []imageFile, dirs []string, err error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, pathErr("data", root, err)
	}
	for _, e := range entries {
		if hidden(e.Name()) {
			continue
		}
		p := filepath.Join(root, e.Name())
		info, err := os.Stat(p) // follows symlinks
		if err != nil {
			return nil, nil, pathErr("data", p, err)
		}
		if !info.IsDir() {
			if isImage(e.Name()) {
				files = append(files, imageFile{path: p, class: -1})
			}
			continue
		}
		class := len(dirs)
		dirs = append(dirs, e.Name())
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, nil, pathErr("data", p, err)
		}
		err = filepath.WalkDir(real, func(q string, d fs.DirEntry, err error) error {
			shown := p
			if rel, rerr := filepath.Rel(real, q); rerr == nil {
				shown = filepath.Join(p, rel)
			}
			if err != nil {
				return pathErr("data", shown, err)
			}
			if q != real && hidden(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && isImage(d.Name()) {
				files = append(files, imageFile{path: shown, class: class})
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return files, dirs, nil
}

// loadFolder decodes the PNG and JPEG files under root. With wantClasses, images that all sit in
// class folders get the class folder's index as label. It returns the images kept, the number of
// images found, and the indices of the kept ones.
func loadFolder(root string, wantClasses bool, opt Options) (*Set, int, []int, error) {
	if opt.Channels != 1 && opt.Channels != 3 {
		return nil, 0, nil, fmt.Errorf("data: %s: the model takes %d channels, images give 1 (grey) or 3 (RGB)", root, opt.Channels)
	}
	files, dirs, err := listImages(root)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(files) == 0 {
		return nil, 0, nil, fmt.Errorf("data: %s: no PNG or JPEG files in the folder", root)
	}
	if opt.Height == 0 && opt.Width == 0 {
		if opt.Height, opt.Width, err = imageSize(files[0].path); err != nil {
			return nil, 0, nil, err
		}
	}
	s := &Set{C: opt.Channels, H: opt.Height, W: opt.Width, Source: root}
	classes := wantClasses && len(dirs) > 0 && !slices.ContainsFunc(files, func(f imageFile) bool { return f.class < 0 })
	if classes {
		count := make([]int, len(dirs))
		for _, f := range files {
			count[f.class]++
		}
		for i, n := range count {
			if n == 0 {
				return nil, 0, nil, fmt.Errorf("data: %s: class folder holds no PNG or JPEG files", filepath.Join(root, dirs[i]))
			}
		}
		s.Classes = dirs
	}
	total := len(files)
	var kept []int
	if opt.Samples > 0 && opt.Samples < total {
		kept = permutation(total, opt.Seed)[:opt.Samples]
		slices.Sort(kept)
	}
	s.N = total
	if kept != nil {
		s.N = len(kept)
	}
	per := s.C * s.H * s.W
	if err := checkFits(root, s.N, per); err != nil {
		return nil, 0, nil, err
	}
	// Pixels are kept as bytes (R, G, B planes; a grey model's luma is taken batch by batch).
	plane := s.H * s.W
	st := &store{enc: encBytes, srcC: 3, bytes: make([]byte, s.N*3*plane)}
	if s.C == 1 {
		st.enc = encLuma
	}
	if classes {
		s.Labels = make([]int, s.N)
	}
	dst := image.NewRGBA(image.Rect(0, 0, s.W, s.H))
	resized := 0
	for k := 0; k < s.N; k++ {
		i := k
		if kept != nil {
			i = kept[k]
		}
		scaled, err := decodeInto(files[i].path, dst)
		if err != nil {
			return nil, 0, nil, err
		}
		if scaled {
			resized++
		}
		toPlanes(st.bytes[k*3*plane:(k+1)*3*plane], dst)
		if opt.Progress != nil {
			opt.Progress(k+1, s.N)
		}
		if classes {
			s.Labels[k] = files[i].class
		}
	}
	set := newSet(s.N, s.C, s.H, s.W, st)
	set.Labels, set.Classes, set.Source = s.Labels, s.Classes, s.Source
	s = set
	if resized > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%s: %d of %d images resized to %d×%d (H×W, Catmull-Rom)", root, resized, s.N, s.H, s.W))
	}
	return s, total, kept, nil
}

// imageSize reads the height and width of one image file from its header.
func imageSize(path string) (h, w int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, pathErr("data", path, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return 0, 0, fmt.Errorf("data: %s: %w", path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxDim || cfg.Height > maxDim {
		return 0, 0, fmt.Errorf("data: %s: image is %d×%d, want 1 to %d on each side", path, cfg.Width, cfg.Height, maxDim)
	}
	return cfg.Height, cfg.Width, nil
}

// decodeInto decodes one image file and draws it, resized when needed, into dst. The decoded
// image is dropped on return, so only one is held at a time.
func decodeInto(path string, dst *image.RGBA) (resized bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, pathErr("data", path, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return false, fmt.Errorf("data: %s: %w", path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxPixels/cfg.Height {
		return false, fmt.Errorf("data: %s: image is %d×%d, outside 1 to %d pixels", path, cfg.Width, cfg.Height, maxPixels)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, pathErr("data", path, err)
	}
	img, _, err := image.Decode(bufio.NewReader(f))
	if err != nil {
		return false, fmt.Errorf("data: %s: %w", path, err)
	}
	dropAlpha(img)
	b := img.Bounds()
	if b.Dx() == dst.Rect.Dx() && b.Dy() == dst.Rect.Dy() {
		draw.Draw(dst, dst.Rect, img, b.Min, draw.Src)
		return false, nil
	}
	draw.CatmullRom.Scale(dst, dst.Rect, img, b, draw.Src, nil)
	return true, nil
}

// dropAlpha makes a decoded image opaque, keeping its colours, as PIL's convert("RGB") does
// (compositing would darken transparent pixels instead).
func dropAlpha(img image.Image) {
	switch m := img.(type) {
	case *image.NRGBA:
		for i := 3; i < len(m.Pix); i += 4 {
			m.Pix[i] = 0xff
		}
	case *image.NRGBA64:
		for i := 6; i < len(m.Pix); i += 8 {
			m.Pix[i], m.Pix[i+1] = 0xff, 0xff
		}
	case *image.Paletted:
		for i, c := range m.Palette {
			if n, ok := c.(color.NRGBA); ok {
				n.A = 0xff
				m.Palette[i] = n
			}
		}
	}
}

// toPlanes writes dst's pixels as three planes of bytes, R, G and B.
func toPlanes(out []byte, dst *image.RGBA) {
	plane := dst.Rect.Dx() * dst.Rect.Dy()
	pix := dst.Pix
	for i := 0; i < plane; i++ {
		out[i], out[plane+i], out[2*plane+i] = pix[4*i], pix[4*i+1], pix[4*i+2]
	}
}
