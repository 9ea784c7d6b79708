//go:build !amd64

package engine

const haveAVX2 = false

var haveAVX512 = false

func kern24(p *kargs) { kernelGo(p, 24) }
func kern16(p *kargs) { kernelGo(p, 16) }
func kern8(p *kargs)  { kernelGo(p, 8) }

func kernSeg(p *segArgs) { kernelSegGo(p) }

func kern48(p *kargs) { kern48Go(p) }

func kernSeg16(p *segArgs) { kernelSegWidthGo(p, 16) }

func dwRow(p *dwArgs) { dwRowGo(p) }

func expSlice(dst, src []float32, sigmoid bool) {
	src = src[:len(dst)]
	for i, v := range src {
		if sigmoid {
			dst[i] = sigmoid32(v)
		} else {
			dst[i] = exp32(v)
		}
	}
}
