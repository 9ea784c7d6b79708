//go:build !amd64

package engine

const haveAVX2 = false

func kern24(p *kargs) { kernelGo(p, 24) }
func kern16(p *kargs) { kernelGo(p, 16) }
func kern8(p *kargs)  { kernelGo(p, 8) }

func kernSeg(p *segArgs) { kernelSegGo(p) }

func dwRow(p *dwArgs) { dwRowGo(p) }
