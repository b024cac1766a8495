package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidings/tidings/broker"
	"github.com/tidings/tidings/internal/nodetest"
	"github.com/tidings/tidings/txlog"
)

// nodeDir is the pinned Node project with Fauna's drivers, where the
// README runs its snippets.
var nodeDir = filepath.Join("..", "..", "transport", "fauna", "testdata", "node")

// nodeSnippet is a script the README runs as node - <<'EOF' … EOF.
var nodeSnippet = regexp.MustCompile(`(?s)node - <<'EOF'\n(.*?)\nEOF\n`)

// The README's move of spell 1, which the snippets then print.
const moveSpell1 = `{"writes":[{"action":"update","collection":"spells","id":"1","data":{"element":"water"}}]}`

// The README's snippets for Fauna's drivers, as written there, against
// the example's two servers as run() starts them (on ports of their own):
// each streams spell 1 from the Fauna front, the test moves the spell
// through the native write endpoint, as the README's curl does, and the
// snippet prints the version the broker committed.
func TestREADMEFaunaSnippets(t *testing.T) {
	readme := readREADME(t, "transport/fauna/testdata/node")
	if !strings.Contains(readme, "-d '"+moveSpell1+"'") {
		t.Fatalf("the README no longer moves spell 1 with %s", moveSpell1)
	}
	snippets := nodeSnippet.FindAllStringSubmatch(readme, -1)
	if len(snippets) != 2 {
		t.Fatalf("the README has %d node snippets, want 2 (faunadb, fauna)", len(snippets))
	}
	_, port, _ := net.SplitHostPort(defaultFaunaAddr)

	for i, driver := range []string{"faunadb", "fauna"} {
		t.Run(driver, func(t *testing.T) {
			nodetest.Need(t, nodeDir, "faunadb", "fauna")
			snippet := snippets[i][1]
			if !strings.Contains(snippet, "require('"+driver+"')") || strings.Count(snippet, port) != 1 {
				t.Fatalf("README snippet %d does not use %s on the default port %s once:\n%s", i+1, driver, port, snippet)
			}
			b, s := startExample(t, "127.0.0.1:0")
			if !strings.Contains(banner(s), s.faunaURL) {
				t.Errorf("the banner does not show the Fauna front's %s:\n%s", s.faunaURL, banner(s))
			}
			_, testPort, _ := net.SplitHostPort(strings.TrimPrefix(s.faunaURL, "http://"))
			lines := runNode(t, nodeDir, strings.Replace(snippet, port, testPort, 1))

			first := lines.Next(t, time.Minute)
			if want := map[string]string{"faunadb": "start ", "fauna": "status "}[driver]; !strings.HasPrefix(first, want) {
				t.Fatalf("the snippet printed %q first, want %s<txn>", first, want)
			}
			moveSpell1To(t, s.url)
			doc, _ := b.Get(txlog.Ref{Collection: "spells", ID: "1"})
			var want map[string]any
			if err := json.Unmarshal(doc.Data, &want); err != nil || want["element"] != "water" {
				t.Fatalf("spell 1 is %s after the move (%v)", doc.Data, err)
			}

			line := lines.Next(t, time.Minute)
			printed, ok := strings.CutPrefix(line, "update ")
			var got map[string]any
			if err := json.Unmarshal([]byte(printed), &got); !ok || err != nil {
				t.Fatalf("the snippet printed %q after the move, want update <document> (%v)", line, err)
			}
			if driver == "fauna" { // a v10 Document: its id, coll and ts, then its fields
				ts, _ := got["ts"].(map[string]any)["isoString"].(string)
				at, err := time.Parse(time.RFC3339Nano, ts)
				if got["id"] != "1" || !reflect.DeepEqual(got["coll"], map[string]any{"name": "spells"}) ||
					err != nil || at.UnixMicro() != int64(doc.TS) {
					t.Errorf("the snippet printed %s, want spell 1 of spells at txn %d", printed, doc.TS)
				}
				delete(got, "id")
				delete(got, "coll")
				delete(got, "ts")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the snippet printed %s, want the data the broker committed, %s", printed, doc.Data)
			}
			t.Logf("the snippet printed:\n%s\n%s", first, line)

			// Shutting down ends the snippet's stream too.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			s.shutdown(ctx)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("shutting down with the snippet's stream open took %v", took)
			}
			if line, ok := <-lines.Lines; ok {
				t.Errorf("after the shutdown the snippet printed %q", line)
			}
			<-lines.Done()
			// The v4 driver hears why its stream ended; the v10 one, whose
			// stream ended cleanly, tries to reconnect, to a server gone.
			said := map[string]string{"faunadb": "shutting_down", "fauna": "ECONNREFUSED"}[driver]
			if !strings.Contains(lines.Stderr(), said) {
				t.Errorf("after the shutdown the snippet said %q, want %s", lines.Stderr(), said)
			}
		})
	}
}

// runNode runs a script in node from dir, its stderr kept for the test.
func runNode(t *testing.T, dir, script string, flags ...string) *nodetest.Process {
	t.Helper()
	return nodetest.Start(t, nodetest.Options{Dir: dir, Args: append(flags, "-"), Stdin: strings.NewReader(script),
		Timeout: 60 * time.Second, Stderr: io.Discard})
}

// startExample starts the example's servers as run() does, on ports of
// their own (the Fauna front's unless faunaAddr is empty), on a broker in
// memory; they are shut down at the end of the test (after node or
// chromium has gone: cleanups run last first), if the test did not.
func startExample(t *testing.T, faunaAddr string) (*broker.Broker, *servers) {
	t.Helper()
	b, err := newBroker("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := listen(b, "127.0.0.1:0", faunaAddr, nil, "")
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.shutdown(ctx)
	})
	return b, s
}

// readREADME reads the repository's README, which must still tell to run
// its snippets from dir after npm ci there.
func readREADME(t *testing.T, dir string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(text)
	if !strings.Contains(readme, "cd "+dir+" && npm ci") {
		t.Fatalf("the README no longer runs its snippets in %s", dir)
	}
	return readme
}

// moveSpell1To moves spell 1 to water through the example's write
// endpoint at url, as the README's curl does.
func moveSpell1To(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url+"/tidings/write", "application/json", strings.NewReader(moveSpell1))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moving spell 1: %s", resp.Status)
	}
}
