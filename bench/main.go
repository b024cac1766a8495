// Command bench is tidings' fan-out harness: it drives tidings, and beside
// it github.com/tmaxmax/go-sse, github.com/centrifugal/centrifuge and
// github.com/r3labs/sse/v2, with the same workload, in the same run, and
// prints deliveries per second, commit-to-delivery latency, memory per
// subscriber and allocations, as a Markdown table (with the ratio of
// tidings to each) and an SVG chart. From the repository's root:
//
//	go run ./bench/...                       # the default run, a few minutes
//	go run ./bench/... -subs 1000 -duration 3s -systems tidings,go-sse
//
// Each run has two phases: first a light load (-load deliveries per
// second) for latency at equal load, then as fast as the subscribers read
// (or -rate) for deliveries per second. N subscribers follow one set: for tidings, the index items_by_topic
// matched on "bench" (or, with -kind, the collection or one document),
// and each commit adds one document to it; for the others, one broadcast
// topic. Every event carries its sequence number and publishing time, so
// each subscriber checks that it lost nothing and received everything in
// order, and records the latency. With -stall, each run is made again with
// that fraction of the subscribers not reading until the writer stops;
// then they read again, and the table says whether they got everything,
// were cut off, or held everyone up.
//
// Over HTTP (SSE, NDJSON) the subscribers are real HTTP/1.1 clients on
// loopback, one connection each, in a second process (this program again):
// see clientproc.go.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if spec := os.Getenv(clientEnv); spec != "" {
		os.Exit(clientMain(spec))
	}
	var (
		subs       = flag.String("subs", "100,1000,10000", "subscriber counts, comma-separated")
		systems    = flag.String("systems", "tidings,tidings-detached,go-sse,centrifuge,r3labs", "systems, comma-separated")
		transports = flag.String("transports", "inproc,sse,ndjson", "transports, comma-separated: inproc, sse, ndjson")
		kind       = flag.String("kind", KindSet, "tidings' subscription: set (an index matched on a term), collection, document")
		load       = flag.Int("load", 50000, "deliveries per second of the first phase of each run, for latency at equal load (events/s = load/subs); 0: no first phase")
		loadDur    = flag.Duration("load-duration", 2*time.Second, "how long the first phase lasts")
		rate       = flag.Int("rate", 0, "events per second of the second phase; 0: as fast as the slowest subscriber reads, at most 2 windows ahead")
		size       = flag.Int("size", 256, "payload bytes per event")
		duration   = flag.Duration("duration", 4*time.Second, "how long the second phase lasts")
		stall      = flag.Float64("stall", 0.01, "fraction of subscribers that stop reading, in a second run of each case; 0: no such runs")
		window     = flag.Int("window", 32, "when -rate is 0, the publisher waits at every window of this many events until every reading subscriber has the one before: it is never more than two windows ahead of the slowest")
		drain      = flag.Duration("drain", 3*time.Second, "after the writer stops, how long without any delivery until the run is taken as over (for the subscribers that kept reading, then for the stalled ones once they read again)")
		repeat     = flag.Int("repeat", 1, "runs of each case, interleaved (case by case, round after round); the table keeps the median by deliveries/s")
		out        = flag.String("out", defaultOut(), "directory for results.md, chart.svg and results.json")
		from       = flag.String("from", "", "runs nothing: writes results.md and chart.svg again from this results.json")
	)
	flag.Parse()
	if *from != "" {
		rerender(*from, *out)
		return
	}
	raiseFileLimit()

	counts, err := parseInts(*subs)
	if err != nil {
		fatal(err)
	}
	chosen := choose(drivers, strings.Split(*systems, ","), strings.Split(*transports, ","))
	if len(chosen) == 0 {
		fatal(fmt.Errorf("no system over any transport chosen"))
	}
	base := Workload{Kind: *kind, LightLoad: *load, LightDuration: *loadDur, Rate: *rate, Size: *size, Duration: *duration, Stall: *stall, Window: *window, Drain: *drain}
	stalls := []float64{0}
	if *stall > 0 {
		stalls = append(stalls, *stall)
	}
	rep := &Report{
		Command:  strings.TrimSpace("go run ./bench/... " + strings.Join(os.Args[1:], " ")),
		Machine:  machine(),
		Workload: base,
		Started:  time.Now(),
	}
	fmt.Fprintf(os.Stderr, "bench: %s\nbench: %s; open files limit %d\n", rep.Command, rep.Machine, fileLimit())
	for _, n := range counts {
		for _, st := range stalls {
			runs := make([][]Result, len(chosen))
			for range max(*repeat, 1) {
				for i, d := range chosen {
					if d.NA != "" && (st > 0 || len(runs[i]) > 0) {
						continue // listed once, with the runs without stalls
					}
					w := base
					w.Subs, w.Stall = n, st
					if err := w.check(); err != nil {
						fatal(err)
					}
					r := run(d, w, runOptions{Progress: os.Stderr})
					fmt.Fprintln(os.Stderr, summary(&r))
					runs[i] = append(runs[i], r)
				}
			}
			for _, rs := range runs {
				if len(rs) > 0 {
					rep.Results = append(rep.Results, median(rs))
				}
			}
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	if err := rep.write(*out); err != nil {
		fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	writeMarkdown(w, rep)
	w.Flush()
	fmt.Fprintf(os.Stderr, "bench: wrote %s, %s and %s in %v\n",
		filepath.Join(*out, "results.md"), filepath.Join(*out, "chart.svg"), filepath.Join(*out, "results.json"), rep.Elapsed.Round(time.Second))
}

// rerender writes the outputs of a saved run again, as this version of
// the harness presents them.
func rerender(from, out string) {
	b, err := os.ReadFile(from)
	if err != nil {
		fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		fatal(fmt.Errorf("%s: %w", from, err))
	}
	if err := rep.write(out); err != nil {
		fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	writeMarkdown(w, &rep)
	w.Flush()
}

// defaultOut is bench/results from the repository's root, results from
// bench itself.
func defaultOut() string {
	if _, err := os.Stat(filepath.Join("bench", "go.mod")); err == nil {
		return filepath.Join("bench", "results")
	}
	return "results"
}

// median returns the run with the median deliveries/s (the lower middle
// of an even count), and records how many runs there were and their rates.
func median(rs []Result) Result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b Result) int { return cmp.Compare(a.Rate, b.Rate) })
	m := sorted[(len(sorted)-1)/2]
	for _, r := range rs {
		m.Rates = append(m.Rates, r.Rate)
	}
	return m
}

func choose(all []driver, systems, transports []string) []driver {
	var out []driver
	for _, d := range all {
		if slices.Contains(systems, d.System) && slices.Contains(transports, d.Transport) {
			out = append(out, d)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("subscriber count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// machine describes where the run ran: CPU model, cores, Go version.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func summary(r *Result) string {
	switch {
	case r.NA != "":
		return fmt.Sprintf("%-10s %-6s n/a: %s", r.System, r.Transport, r.NA)
	case r.Err != "":
		return fmt.Sprintf("%-10s %-6s subs=%d stall=%g failed: %s", r.System, r.Transport, r.Subs, r.Stall, r.Err)
	}
	return fmt.Sprintf("%-10s %-6s subs=%-6d stall=%-4g %10.0f deliveries/s  p99 %v; light load: p50 %v p99 %v p99.9 %v  %s/sub  %.2f allocs/delivery  lost %d/%d  repeated %d  disconnects %d/%d%s",
		r.System, r.Transport, r.Subs, r.Stall, r.Rate, fmtDur(r.P99), fmtDur(r.LightP50), fmtDur(r.LightP99), fmtDur(r.LightP999),
		fmtBytes(r.BytesPerSub), r.AllocsPerDelivery, r.Fleet.Others.Lost, r.Fleet.Stalled.Lost,
		r.Fleet.Others.Repeated+r.Fleet.Stalled.Repeated, r.Fleet.Others.Disconnects, r.Fleet.Stalled.Disconnects,
		map[bool]string{true: "  (everyone waited for the stalled ones)", false: ""}[!r.Fleet.OthersComplete])
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
