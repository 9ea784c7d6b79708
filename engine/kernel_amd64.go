package engine

//go:generate go run gen_kernels.go

import "golang.org/x/sys/cpu"

// haveAVX2 selects the assembly micro-kernels.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

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
func dwRowAVX2(p *dwArgs)

func dwRow(p *dwArgs) {
	if haveAVX2 {
		dwRowAVX2(p)
	} else {
		dwRowGo(p)
	}
}
