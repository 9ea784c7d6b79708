package engine

//go:generate go run gen_kernels.go

import "golang.org/x/sys/cpu"

// haveAVX2 selects the assembly micro-kernels.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// haveAVX512 selects the 16-column segment kernel for convs (see segWidth); a variable so tests
// can run the 8-column path on machines that have AVX-512.
var haveAVX512 = haveAVX2 && cpu.X86.HasAVX512F

//go:noescape
func kern24avx2(p *kargs)

//go:noescape
func kern16avx2(p *kargs)

//go:noescape
func kern8avx2(p *kargs)

func kern24(p *kargs) {
	if haveAVX2 {
		kern24avx2(p)
	} else {
		kernelGo(p, 24)
	}
}

func kern16(p *kargs) {
	if haveAVX2 {
		kern16avx2(p)
	} else {
		kernelGo(p, 16)
	}
}

func kern8(p *kargs) {
	if haveAVX2 {
		kern8avx2(p)
	} else {
		kernelGo(p, 8)
	}
}

//go:noescape
func kernSegAVX2(p *segArgs)

func kernSeg(p *segArgs) {
	if haveAVX2 {
		kernSegAVX2(p)
	} else {
		kernelSegGo(p)
	}
}

//go:noescape
func kern48avx512(p *kargs)

// kern48 runs a full 4×48 GEMM tile (ncols = 48).
func kern48(p *kargs) {
	if haveAVX512 {
		kern48avx512(p)
	} else {
		kern48Go(p)
	}
}

//go:noescape
func kernSeg512(p *segArgs)

// kernSeg16 runs a segment tile whose segments hold up to 16 columns.
func kernSeg16(p *segArgs) {
	if haveAVX512 {
		kernSeg512(p)
	} else {
		kernelSegWidthGo(p, 16)
	}
}

//go:noescape
func dwRowAVX2(p *dwArgs)

func dwRow(p *dwArgs) {
	if haveAVX2 {
		dwRowAVX2(p)
	} else {
		dwRowGo(p)
	}
}

//go:noescape
func expAVX2(dst, src *float32, n int, sigmoid bool)

// expSlice writes e^x (or, with sigmoid, 1/(1+e^-x)) of src into dst.
func expSlice(dst, src []float32, sigmoid bool) {
	n := len(dst)
	src = src[:n]
	done := 0
	if haveAVX2 && n >= 8 {
		done = n &^ 7
		expAVX2(&dst[0], &src[0], done, sigmoid)
		if !sigmoid {
			// the vector code clamps to ±88.38 and flushes results below 2^-126 to 0; redo those exactly
			for i, v := range src[:done] {
				if v > 88.3762626647949 || v < -87 || v != v {
					dst[i] = exp32(v)
				}
			}
		}
	}
	for i := done; i < n; i++ {
		if sigmoid {
			dst[i] = sigmoid32(src[i])
		} else {
			dst[i] = exp32(src[i])
		}
	}
}
