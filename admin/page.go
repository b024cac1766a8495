package admin

import (
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// pageData is what the page shows: the report, with its figures made
// readable.
type pageData struct {
	Report
	Latencies []namedLatency
	Open      []figure // streams by protocol
	Refused   []figure // refusals by status
	Rows      []row
	JSON      string // the same view as JSON
	All       string // the view with every subscription; "" when it lists them all
}

type namedLatency struct {
	Name string
	Latency
}

type figure struct {
	Name  string
	Value int64
}

type row struct {
	Entry
	Age    time.Duration // since it started
	Source string        // its stream, or "in process"
}

func newPageData(rep Report, r *http.Request) pageData {
	d := pageData{Report: rep, Latencies: []namedLatency{
		{"commit", rep.Broker.Commit},
		{"fsync", rep.Broker.Fsync},
		{"commit to first queue", rep.Broker.FirstQueue},
		{"commit to last queue", rep.Broker.LastQueue},
	}}
	if t := rep.Transport; t != nil {
		for _, p := range slices.Sorted(maps.Keys(t.Open)) {
			d.Open = append(d.Open, figure{p, t.Open[p]})
		}
		for _, s := range slices.Sorted(maps.Keys(t.Refused)) {
			d.Refused = append(d.Refused, figure{strconv.Itoa(s) + " " + http.StatusText(s), t.Refused[s]})
		}
	}
	for _, e := range rep.Subscriptions {
		d.Rows = append(d.Rows, row{Entry: e, Age: rep.Time.Sub(e.Started), Source: source(e.Stream)})
	}
	q := r.URL.Query()
	q.Del("format")
	if len(rep.Subscriptions) < rep.Total {
		all := maps.Clone(q)
		all.Set("limit", strconv.Itoa(rep.Total))
		d.All = "?" + all.Encode()
	}
	q.Set("format", "json")
	d.JSON = "?" + q.Encode()
	return d
}

// source says where a subscription comes from: its stream, or the
// process.
func source(s *Stream) string {
	if s == nil {
		return "in process"
	}
	text := s.Protocol + " from " + s.Remote
	if s.Subscriptions > 1 {
		text += fmt.Sprintf(", %q of %d", s.Name, s.Subscriptions)
	}
	if s.ConnStreams > 1 {
		text += fmt.Sprintf(", %d streams on its connection", s.ConnStreams)
	}
	if s.Detached {
		text += ", detached"
	}
	return text
}

// human writes a duration to three figures or so: 0, 512µs, 1.2ms,
// 2.35s, 3m12s.
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// size writes a number of bytes readably: 512 B, 1.5 KiB, 3.0 MiB.
func size[N int | int64](bytes N) string {
	n := int64(bytes)
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, unit := float64(n)/1024, 0
	for v >= 1024 && unit < 3 {
		v, unit = v/1024, unit+1
	}
	return fmt.Sprintf("%.1f %s", v, []string{"KiB", "MiB", "GiB", "TiB"}[unit])
}

// The page: html/template escapes every figure, and targets (whose terms
// are any JSON the client sent) above all.
var page = template.Must(template.New("admin").Funcs(template.FuncMap{
	"human": human, "size": size[int64], "isize": size[int],
	"utc": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tidings: subscriptions</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.t { font-family: ui-monospace, monospace; }
tr.behind td { background: #fff3e0; }
h2 { font-size: 1.1em; margin-top: 1.5em; }
</style>
</head>
<body>
<h1>tidings: subscriptions</h1>
<p>At {{utc .Time}}. <a href="{{.JSON}}">JSON</a></p>

<h2>Broker</h2>
<table>
<tr><th>subscriptions</th><td class="n">{{.Broker.Subscriptions}}</td></tr>
<tr><th>commits</th><td class="n">{{.Broker.Commits}}</td></tr>
<tr><th>events delivered</th><td class="n">{{.Broker.EventsDelivered}}</td></tr>
<tr><th>catching up</th><td class="n">{{.Broker.CatchingUp}}</td></tr>
<tr><th>buffered</th><td class="n">{{size .Broker.BytesBuffered}}</td></tr>
<tr><th>overflows</th><td class="n">{{.Broker.Overflows}}</td></tr>
<tr><th>conflicts</th><td class="n">{{.Broker.Conflicts}}</td></tr>
</table>
<table>
<tr><th>latency</th><th>count</th><th>p50</th><th>p99</th></tr>
{{range .Latencies}}<tr><td>{{.Name}}</td><td class="n">{{.Count}}</td><td class="n">{{human .P50}}</td><td class="n">{{human .P99}}</td></tr>
{{end}}</table>
{{with .Transport}}
<h2>Transport</h2>
<table>
{{range $.Open}}<tr><th>{{.Name}} streams open</th><td class="n">{{.Value}}</td></tr>
{{end}}{{range $.Refused}}<tr><th>refused {{.Name}}</th><td class="n">{{.Value}}</td></tr>
{{end}}<tr><th>write timeouts</th><td class="n">{{.WriteTimeouts}}</td></tr>
<tr><th>written</th><td class="n">{{size .BytesWritten}}</td></tr>
<tr><th>feed pages</th><td class="n">{{.FeedPages}}</td></tr>
<tr><th>feed pages collapsed</th><td class="n">{{.FeedCollapsed}}</td></tr>
</table>
{{end}}
<h2>Subscriptions</h2>
<p>{{len .Rows}} of {{.Total}}{{if .Transport}} ({{.Streams}} streams){{end}}, the most behind first.{{if .All}} <a href="{{.All}}">List all {{.Total}}</a>.{{end}}</p>
<table>
<tr><th>id</th><th>target</th><th>lag</th><th>behind</th><th>queued</th><th>catching up</th><th>overflows</th><th>delivered</th><th>position</th><th>age</th><th>from</th></tr>
{{range .Rows}}<tr{{if .Behind}} class="behind"{{end}}><td class="n">{{.ID}}</td><td class="t">{{.Target}}</td><td class="n">{{human .Lag}}</td><td class="n">{{.Behind}}</td><td class="n">{{.Queued}}{{if .Queued}} ({{isize .QueuedBytes}}){{end}}</td><td>{{if .CatchingUp}}yes{{end}}</td><td class="n">{{.Overflows}}</td><td class="n">{{.Delivered}}</td><td class="n">{{.Position}}</td><td class="n">{{human .Age}}</td><td>{{.Source}}</td></tr>
{{end}}</table>
</body>
</html>
`))
