package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// writeSVG draws two panels side by side, both against the subscriber
// count on a log axis: deliveries per second, and p99 latency at the light
// load (latency at equal load; under saturation when there was no light
// phase), each on a log axis too; one line per system and transport, from
// the runs without stalls. Hand-written SVG: no dependency, and it renders
// on GitHub.
func writeSVG(w io.Writer, rep *Report) error {
	type point struct{ x, rate, p99 float64 }
	type series struct {
		name, color, dash string
		pts               []point
	}
	var all []*series
	byName := map[string]*series{}
	for _, r := range sortResults(rep.Results) {
		if r.Stall > 0 || r.NA != "" || r.Err != "" || r.Rate <= 0 {
			continue
		}
		name := r.System + " " + r.Transport
		s := byName[name]
		if s == nil {
			s = &series{name: name, color: systemColor(r.System), dash: transportDash(r.Transport)}
			byName[name] = s
			all = append(all, s)
		}
		p99 := r.LightP99
		if p99 <= 0 {
			p99 = r.P99
		}
		s.pts = append(s.pts, point{float64(r.Subs), r.Rate, max(p99.Seconds()*1e3, 1e-3)})
	}

	const (
		panelW, panelH = 460, 300
		left, top      = 70, 40
		gap            = 110
		width          = left + panelW + gap + panelW + 30
	)
	height := top + panelH + 60 + 18*((len(all)+2)/3) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)

	xs, rates, p99s := []float64{}, []float64{}, []float64{}
	for _, s := range all {
		for _, p := range s.pts {
			xs, rates, p99s = append(xs, p.x), append(rates, p.rate), append(p99s, p.p99)
		}
	}
	xr := logRange(xs)
	panels := []struct {
		title, unit string
		r           [2]float64
		x0          int
		val         func(point) float64
	}{
		{"deliveries per second (higher is better)", "/s", logRange(rates), left, func(p point) float64 { return p.rate }},
		{"p99 commit-to-delivery latency at light load, ms (lower is better)", "ms", logRange(p99s), left + panelW + gap, func(p point) float64 { return p.p99 }},
	}
	for _, p := range panels {
		px := func(v float64) float64 { return float64(p.x0) + panelW*(math.Log10(v)-xr[0])/(xr[1]-xr[0]) }
		py := func(v float64) float64 { return float64(top+panelH) - panelH*(math.Log10(v)-p.r[0])/(p.r[1]-p.r[0]) }
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", p.x0, top-16, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", p.x0, top, panelW, panelH)
		for e := math.Floor(xr[0]); e <= xr[1]; e++ {
			if e < xr[0] {
				continue
			}
			x := px(math.Pow(10, e))
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top, x, top+panelH)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+panelH+16, html.EscapeString(fmtCount(math.Pow(10, e))))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">subscribers</text>`+"\n", p.x0+panelW/2, top+panelH+34)
		for e := math.Floor(p.r[0]); e <= p.r[1]; e++ {
			if e < p.r[0] {
				continue
			}
			y := py(math.Pow(10, e))
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", p.x0, y, p.x0+panelW, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", p.x0-6, y+4, html.EscapeString(fmtCount(math.Pow(10, e))))
		}
		for _, s := range all {
			var pts []string
			for _, pt := range s.pts {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(pt.x), py(p.val(pt))))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", strings.Join(pts, " "), s.color, s.dash)
			for _, pt := range s.pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s, %s subscribers: %s%s</title></circle>`+"\n",
					px(pt.x), py(p.val(pt)), s.color, html.EscapeString(s.name), fmtCount(pt.x), html.EscapeString(sig3(p.val(pt))), p.unit)
			}
		}
	}
	// The legend, three to a row.
	for i, s := range all {
		x := left + (i%3)*260
		y := top + panelH + 60 + 18*(i/3)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", x, y-4, x+30, y-4, s.color, s.dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x+36, y, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// logRange is the range of log10 of vs, padded to whole powers of ten, at
// least one decade wide.
func logRange(vs []float64) [2]float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if v > 0 {
			lo, hi = min(lo, math.Log10(v)), max(hi, math.Log10(v))
		}
	}
	if math.IsInf(lo, 1) {
		return [2]float64{0, 1}
	}
	lo, hi = math.Floor(lo), math.Ceil(hi)
	if hi <= lo {
		hi = lo + 1
	}
	return [2]float64{lo, hi}
}

// fmtCount prints 1000 as 1k, 1000000 as 1M, 0.001 as 0.001.
func fmtCount(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%gG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

func systemColor(s string) string {
	switch s {
	case "tidings":
		return "#1f77b4"
	case "tidings-detached":
		return "#17becf"
	case "go-sse":
		return "#ff7f0e"
	case "centrifuge":
		return "#2ca02c"
	case "r3labs":
		return "#9467bd"
	}
	return "#555"
}

// transportDash: solid in process, dashed SSE, dotted NDJSON.
func transportDash(t string) string {
	switch t {
	case TransportSSE:
		return "8 4"
	case TransportNDJSON:
		return "2 3"
	}
	return "none"
}
