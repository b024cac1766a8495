package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is a whole invocation: its runs and where they ran.
type Report struct {
	Command  string        `json:"command"`
	Machine  string        `json:"machine"`
	Workload Workload      `json:"workload"` // the common parameters (Subs and Stall vary)
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed"`
	Results  []Result      `json:"results"`
}

// write writes results.md, chart.svg and results.json to dir.
func (rep *Report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"results.md", func(w io.Writer) error { writeMarkdown(w, rep); return nil }},
		{"chart.svg", func(w io.Writer) error { return writeSVG(w, rep) }},
		{"results.json", func(w io.Writer) error { return json.NewEncoder(w).Encode(rep) }},
	}
	for _, f := range files {
		file, err := os.Create(filepath.Join(dir, f.name))
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(file)
		err = f.write(bw)
		if err == nil {
			err = bw.Flush()
		}
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// transportOrder and systemOrder order the tables' rows.
var (
	transportOrder = []string{TransportInProcess, TransportSSE, TransportNDJSON}
	systemOrder    = []string{"tidings", "tidings-detached", "go-sse", "centrifuge", "r3labs"}
)

func sortResults(rs []Result) []Result {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b Result) int {
		if a.Subs != b.Subs {
			return a.Subs - b.Subs
		}
		if d := slices.Index(transportOrder, a.Transport) - slices.Index(transportOrder, b.Transport); d != 0 {
			return d
		}
		return slices.Index(systemOrder, a.System) - slices.Index(systemOrder, b.System)
	})
	return rs
}

// find returns the run of system over transport with subs and stall.
func find(rs []Result, system, transport string, subs int, stall float64) *Result {
	for i := range rs {
		r := &rs[i]
		if r.System == system && r.Transport == transport && r.Subs == subs && r.Stall == stall && r.NA == "" && r.Err == "" {
			return r
		}
	}
	return nil
}

// writeMarkdown writes the workload, the table of runs without stalls
// (with the ratio of tidings to each peer over the same transport and
// subscriber count), and the table of stalled runs.
func writeMarkdown(w io.Writer, rep *Report) {
	wl := &rep.Workload
	rate := fmt.Sprintf("as fast as the slowest subscriber reads, at most 2×%d events in flight", wl.Window)
	if wl.Rate > 0 {
		rate = fmt.Sprintf("%d events/s", wl.Rate)
	}
	fmt.Fprintf(w, "Command: `%s`  \n", rep.Command)
	fmt.Fprintf(w, "Machine: %s  \n", rep.Machine)
	fmt.Fprintf(w, "Workload: tidings subscription kind %s; %d-byte payloads; each run first publishes for %v at a light load of %d deliveries/s "+
		"(latency at equal load: columns p50, p99, p99.9), then for %v %s (deliveries/s, and p99 under that load: column sat. p99); %v to drain.  \n",
		wl.Kind, wl.Size, wl.LightDuration, wl.LightLoad, wl.Duration, rate, wl.Drain)
	fmt.Fprintf(w, "Started %s, took %v.\n\n", rep.Started.UTC().Format(time.RFC3339), rep.Elapsed.Round(time.Second))

	rs := sortResults(rep.Results)
	fmt.Fprintln(w, "| subs | transport | system | deliveries/s | tidings ÷ it | sat. p99 | p50 | p99 | p99.9 | mem/sub | allocs/delivery | lost | reordered |")
	fmt.Fprintln(w, "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		if r.Stall > 0 {
			continue
		}
		head := fmt.Sprintf("| %d | %s | %s |", r.Subs, r.Transport, r.System)
		switch {
		case r.NA != "":
			fmt.Fprintf(w, "%s n/a: %s | | | | | | | | | |\n", head, r.NA)
			continue
		case r.Err != "":
			fmt.Fprintf(w, "%s failed: %s | | | | | | | | | |\n", head, oneLine(r.Err))
			continue
		}
		ratio := ""
		if t := find(rep.Results, "tidings", r.Transport, r.Subs, 0); t != nil && !strings.HasPrefix(r.System, "tidings") && r.Rate > 0 {
			ratio = fmt.Sprintf("%.2f×", t.Rate/r.Rate)
		}
		f := &r.Fleet
		rate := fmtRate(r.Rate)
		if len(r.Rates) > 1 {
			var all []string
			for _, v := range r.Rates {
				all = append(all, fmtRate(v))
			}
			rate += " (of " + strings.Join(all, ", ") + ")"
		}
		fmt.Fprintf(w, "%s %s | %s | %s | %s | %s | %s | %s | %.2f | %d | %d |\n", head,
			rate, ratio, fmtDur(r.P99), fmtDur(r.LightP50), fmtDur(r.LightP99), fmtDur(r.LightP999), fmtBytes(r.BytesPerSub),
			r.AllocsPerDelivery, f.Others.Lost+f.Stalled.Lost, f.Others.Repeated+f.Stalled.Repeated)
	}

	var stalled []Result
	for _, r := range rs {
		if r.Stall > 0 {
			stalled = append(stalled, r)
		}
	}
	if len(stalled) == 0 {
		return
	}
	fmt.Fprintf(w, "\nWith %g%% of the subscribers not reading until the writer stops (then they read again):\n\n", 100*stalled[0].Stall)
	fmt.Fprintln(w, "| subs | transport | system | others: deliveries/s | vs no stall | others: p99 (light load) | no stall | stalled: received / published | stalled: lost | cut off | outcome |")
	fmt.Fprintln(w, "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range stalled {
		head := fmt.Sprintf("| %d | %s | %s |", r.Subs, r.Transport, r.System)
		if r.Err != "" {
			fmt.Fprintf(w, "%s failed: %s | | | | | | | |\n", head, oneLine(r.Err))
			continue
		}
		vs, p99 := "", ""
		if b := find(rep.Results, r.System, r.Transport, r.Subs, 0); b != nil {
			vs, p99 = fmt.Sprintf("%.2f×", r.Rate/b.Rate), fmtDur(b.LightP99)
		}
		s := &r.Fleet.Stalled
		fmt.Fprintf(w, "%s %s | %s | %s | %s | %d / %d | %d | %d | %s |\n", head,
			fmtRate(r.Rate), vs, fmtDur(r.LightP99), p99, s.Received, uint64(s.Subs)*r.Events, s.Lost, s.Disconnects, outcome(&r))
	}
}

// outcome says in words what the stalled subscribers did to the others
// and what became of them.
func outcome(r *Result) string {
	f := &r.Fleet
	var parts []string
	if !f.OthersComplete {
		parts = append(parts, "stalled everyone")
	}
	if r.PublisherBlocked {
		parts = append(parts, "the publisher waited")
	}
	switch s := &f.Stalled; {
	case s.Lost > 0 && s.Disconnects > 0:
		parts = append(parts, fmt.Sprintf("dropped the slow ones: they lost %d events", s.Lost))
	case s.Lost > 0:
		parts = append(parts, fmt.Sprintf("the slow ones lost %d events", s.Lost))
	case s.Disconnects > 0:
		parts = append(parts, "cut the slow ones off, yet they received everything")
	default:
		parts = append(parts, "the slow ones lost nothing")
	}
	if f.Others.Lost > 0 {
		parts = append(parts, fmt.Sprintf("the others lost %d", f.Others.Lost))
	}
	return strings.Join(parts, "; ")
}

func oneLine(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", "/") }

// fmtRate prints a rate with thousands separated.
func fmtRate(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + "µs"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + "ms"
	}
	return sig3(d.Seconds()) + "s"
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// fmtBytes prints a byte count in B, KiB or MiB.
func fmtBytes(v float64) string {
	switch {
	case v < 1024:
		return fmt.Sprintf("%.0f B", v)
	case v < 1<<20:
		return sig3(v/1024) + " KiB"
	}
	return sig3(v/(1<<20)) + " MiB"
}
