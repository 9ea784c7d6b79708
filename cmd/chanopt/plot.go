package main

import (
	"fmt"
	"html"
	"strings"
)

// plotBytes draws, per layer in graph order, the channel count as a bar and the EVBMF rank of each
// side (as a channel count) as lines; layers of pinned groups are hatched. The HTML form embeds the
// SVG and adds hover details.
func plotBytes(path string, rep *analyzeReport) []byte {
	svg := plotSVG(rep)
	if strings.HasSuffix(path, ".html") {
		page := "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>chanopt analyze: " + html.EscapeString(rep.Model) +
			"</title><style>body{font-family:sans-serif;margin:20px}rect.bar:hover{opacity:.7}</style></head><body>\n<h2>" +
			html.EscapeString(rep.Model) + "</h2>\n<p>Bars: channels per layer. Lines: EVBMF rank (kept components) of the input and output side. Hover a bar for details.</p>\n" +
			svg + "\n</body></html>\n"
		return []byte(page)
	}
	return []byte(svg)
}

func plotSVG(rep *analyzeReport) string {
	const left, right, top, bottom, plotH = 60, 56, 40, 120, 300
	n := len(rep.Layers)
	step := 24.0
	if n > 60 {
		step = 14
	}
	width := left + right + int(step*float64(max(n, 1)))
	height := top + plotH + bottom
	maxC := 1
	for _, l := range rep.Layers {
		maxC = max(maxC, l.OutChannels, l.InChannels)
	}
	y := func(v float64) float64 { return top + plotH - v/float64(maxC)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	b.WriteString(`<defs><pattern id="pin" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ccc"/><line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="3"/></pattern></defs>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">%s: channels and EVBMF rank per layer</text>`+"\n", left, html.EscapeString(rep.Model))
	// Axes and grid.
	for i := 0; i <= 4; i++ {
		v := float64(maxC) * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			left, width-right, y(v), y(v), left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text transform="translate(14,%d) rotate(-90)" text-anchor="middle">channels</text>`+"\n", top+plotH/2)
	for i := 0; i <= 4; i++ {
		r := float64(i) / 4
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#e45756">%.2f</text>`+"\n", width-right+4, float64(top)+plotH-r*plotH+4, r)
	}
	fmt.Fprintf(&b, `<text transform="translate(%d,%d) rotate(90)" text-anchor="middle" fill="#e45756" font-size="10">rank (fraction of channels)</text>`+"\n", width-10, top+plotH/2)
	var rin, rout []string
	for i, l := range rep.Layers {
		x := float64(left) + step*float64(i)
		fill := "#4c78a8"
		if l.Pinned {
			fill = "url(#pin)"
		}
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s (%s)&#10;channels %d→%d&#10;rank in %.3f (%d), out %.3f (%d)&#10;KG in %.3f, out %.3f; MC in %.2f, out %.2f; QC %.3f&#10;params %d, MACs %d%s</title></rect>`+"\n",
			x+1, y(float64(l.OutChannels)), step-2, float64(plotH)-(y(float64(l.OutChannels))-top), fill,
			html.EscapeString(l.Name), l.Op, l.InChannels, l.OutChannels, l.RankIn, int(l.RankIn*float64(l.InChannels)+0.5),
			l.RankOut, int(l.RankOut*float64(l.OutChannels)+0.5), l.KGIn, l.KGOut, l.MCIn, l.MCOut, l.QC, l.Params, l.MACs,
			map[bool]string{true: "&#10;pinned", false: ""}[l.Pinned])
		cx := x + step/2
		// Ranks are fractions of the channels: drawn against the right-hand axis.
		yr := func(r float64) float64 { return top + plotH - r*plotH }
		rout = append(rout, fmt.Sprintf("%.1f,%.1f", cx, yr(l.RankOut)))
		if l.InChannels > 1 && l.RankIn > 0 || l.Op != "Conv" {
			rin = append(rin, fmt.Sprintf("%.1f,%.1f", cx, yr(l.RankIn)))
		}
		fmt.Fprintf(&b, `<text transform="translate(%.1f,%d) rotate(60)" font-size="9">%s</text>`+"\n", cx-3, top+plotH+8, html.EscapeString(short(l.Name, 24)))
	}
	if len(rout) > 0 {
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#e45756" stroke-width="2"/>`+"\n", strings.Join(rout, " "))
	}
	if len(rin) > 0 {
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#54a24b" stroke-width="2" stroke-dasharray="5,3"/>`+"\n", strings.Join(rin, " "))
	}
	// Legend.
	lx := width - right - 330
	fmt.Fprintf(&b, `<g transform="translate(%d,28)"><rect width="12" height="10" fill="#4c78a8"/><text x="16" y="9">channels</text>`+
		`<rect x="80" width="12" height="10" fill="url(#pin)"/><text x="96" y="9">pinned</text>`+
		`<line x1="150" x2="170" y1="5" y2="5" stroke="#e45756" stroke-width="2"/><text x="174" y="9">rank out</text>`+
		`<line x1="235" x2="255" y1="5" y2="5" stroke="#54a24b" stroke-width="2" stroke-dasharray="5,3"/><text x="259" y="9">rank in</text></g>`+"\n", max(lx, left))
	b.WriteString("</svg>\n")
	return b.String()
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}
