package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tidings/tidings/internal/checkpoint"
	"github.com/tidings/tidings/internal/crashtest"
	"github.com/tidings/tidings/txlog"
)

// The parent of TestBrokerCrash running one child (see crash_child_test.go
// for the child): it starts the child, reads what the child says, and
// kills it with SIGKILL at a moment chosen at random.

type crashIntentWrite struct {
	ref    txlog.Ref
	action txlog.Action
	after  []byte // nil: deleted
}

type crashEvent struct{ cursor, json string }

// crashRun is what the parent learned from one child.
type crashRun struct {
	kill    string
	behind  bool // the child's clock was an hour behind
	ready   bool
	head    txlog.Txn                             // the head the child started from
	intents [crashCommitters][][]crashIntentWrite // by seq: what each transaction writes
	acks    [crashCommitters][]txlog.Txn          // by seq: the txn Commit returned
	events  [][]crashEvent                        // by subscriber
	ended   []bool                                // the subscriber's stream ended
	subFail []string                              // Subscribe failed
	ckpts   int                                   // explicit checkpoints begun
	ckptsOK int                                   // checkpoints written (all kinds)
	stderr  string
}

func (run *crashRun) numAcks() int {
	n := 0
	for c := range run.acks {
		n += len(run.acks[c])
	}
	return n
}

var crashActions = map[string]txlog.Action{"create": txlog.ActionCreate, "update": txlog.ActionUpdate, "delete": txlog.ActionDelete}

// handle takes one line of the child's output.
func (run *crashRun) handle(line string) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return fmt.Errorf("empty line")
	}
	atoi := func(s string, max int) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || (max >= 0 && n >= max) {
			return 0, fmt.Errorf("bad number %q in line %q", s, line)
		}
		return n, nil
	}
	switch f[0] {
	case "ready":
		txn, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if len(f) != 2 || err != nil || run.ready {
			return fmt.Errorf("bad line %q", line)
		}
		run.ready, run.head = true, txlog.Txn(txn)
	case "try":
		if len(f) < 6 || (len(f)-3)%3 != 0 {
			return fmt.Errorf("bad line %q", line)
		}
		c, err := atoi(f[1], crashCommitters)
		if err != nil {
			return err
		}
		seq, err := atoi(f[2], -1)
		if err != nil {
			return err
		}
		if seq != len(run.intents[c]) || seq != len(run.acks[c]) {
			return fmt.Errorf("committer %d tries seq %d after %d tries and %d acks", c, seq, len(run.intents[c]), len(run.acks[c]))
		}
		var ws []crashIntentWrite
		for i := 3; i < len(f); i += 3 {
			k, err := atoi(f[i], crashDocs)
			if err != nil {
				return err
			}
			a, ok := crashActions[f[i+1]]
			if !ok {
				return fmt.Errorf("bad action in line %q", line)
			}
			w := crashIntentWrite{ref: crashRef(c, k), action: a}
			if a != txlog.ActionDelete {
				w.after = []byte(f[i+2])
			}
			ws = append(ws, w)
		}
		run.intents[c] = append(run.intents[c], ws)
	case "ack":
		if len(f) != 4 {
			return fmt.Errorf("bad line %q", line)
		}
		c, err := atoi(f[1], crashCommitters)
		if err != nil {
			return err
		}
		seq, err := atoi(f[2], -1)
		if err != nil {
			return err
		}
		txn, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil || seq != len(run.acks[c]) || seq >= len(run.intents[c]) {
			return fmt.Errorf("committer %d acks seq %d after %d tries and %d acks", c, seq, len(run.intents[c]), len(run.acks[c]))
		}
		run.acks[c] = append(run.acks[c], txlog.Txn(txn))
	case "ev":
		p := strings.SplitN(line, " ", 4)
		if len(p) != 4 {
			return fmt.Errorf("bad line %q", line)
		}
		i, err := atoi(p[1], len(run.events))
		if err != nil {
			return err
		}
		if run.ended[i] {
			return fmt.Errorf("subscriber %d: an event after the end of its stream: %q", i, line)
		}
		run.events[i] = append(run.events[i], crashEvent{cursor: p[2], json: p[3]})
	case "evend":
		i, err := atoi(f[len(f)-1], len(run.events))
		if err != nil {
			return err
		}
		run.ended[i] = true
	case "subfail":
		i, err := atoi(f[1], len(run.events))
		if err != nil {
			return err
		}
		run.subFail[i] = strings.Join(f[2:], " ")
	case "ckpt":
		run.ckpts++
	case "ckptdone":
		run.ckptsOK++
	default:
		return fmt.Errorf("bad line %q", line)
	}
	return nil
}

// runCrashChild starts a child on dir, kills it with SIGKILL at a point
// chosen by rng, and returns once it is dead and its output read.
func runCrashChild(dir string, round int, cursors []string, rng *rand.Rand) (*crashRun, error) {
	n := len(cursors)
	run := &crashRun{events: make([][]crashEvent, n), ended: make([]bool, n), subFail: make([]string, n)}

	// Four ways to pick the moment: a random delay from the start (which
	// may fall while the child recovers), a random delay from "ready", right
	// after the n'th acknowledgement, or during the child's n'th checkpoint
	// of its own: a random delay after it began, or as soon as its file
	// appears (so, in the middle of writing it).
	var delay time.Duration
	ackLimit, ckptLimit := -1, -1
	watchTmp := false
	mode := [...]int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3}[rng.IntN(20)]
	switch mode {
	case 0:
		delay = time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
		run.kill = fmt.Sprintf("%v after start", delay.Round(time.Microsecond))
	case 1:
		delay = time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		run.kill = fmt.Sprintf("%v after ready", delay.Round(time.Microsecond))
	case 2:
		ackLimit = 1 + rng.IntN(300)
		run.kill = fmt.Sprintf("after %d acks", ackLimit)
	case 3:
		ckptLimit = 1 + rng.IntN(4)
		if watchTmp = rng.IntN(3) > 0; watchTmp {
			run.kill = fmt.Sprintf("writing checkpoint %d", ckptLimit)
		} else {
			delay = time.Duration(rng.Int64N(int64(1500 * time.Microsecond)))
			run.kill = fmt.Sprintf("%v into checkpoint %d", delay.Round(time.Microsecond), ckptLimit)
		}
	}

	env := []string{
		crashChildEnv + "=" + dir,
		crashRoundEnv + "=" + strconv.Itoa(round),
		crashCursorsEnv + "=" + strings.Join(cursors, ","),
		crashRandEnv + "=" + strconv.FormatUint(rng.Uint64(), 10),
	}
	if mode == 3 {
		env = append(env, crashCkptEnv+"=1")
	}
	// In some rounds the child's wall clock is an hour behind: its txns
	// must still go on above every earlier one.
	if rng.IntN(4) == 0 {
		env = append(env, crashBehindEnv+"=1h")
		run.behind = true
	}
	child, err := crashtest.Start(crashtest.Options{Run: "^TestBrokerCrash$", Env: env})
	if err != nil {
		return run, err
	}
	if mode == 0 {
		child.KillAfter(delay)
	}
	var tmpWatch chan struct{} // closed when the watcher below ends
	noTmp := false             // the watcher saw no checkpoint file appear
	res, runErr := child.Watch(func(line string) error {
		if err := run.handle(line); err != nil {
			return err
		}
		if child.Killed() {
			return nil // lines written before the kill took effect count too
		}
		switch {
		case mode == 1 && strings.HasPrefix(line, "ready "):
			child.KillAfter(delay)
		case mode == 2 && strings.HasPrefix(line, "ack ") && run.numAcks() == ackLimit:
			child.Kill()
		case mode == 3 && line == "ckpt" && run.ckpts == ckptLimit && !watchTmp:
			child.KillAfter(delay)
		case mode == 3 && line == "ckpt" && run.ckpts == ckptLimit:
			// Watch for the checkpoint's file: a temporary one, or a
			// checkpoint newer than those there now; kill when it
			// appears, or after 50ms without it.
			ckptDir := filepath.Join(dir, "checkpoints")
			var newest txlog.Txn
			if txns, _ := checkpoint.List(ckptDir); len(txns) > 0 {
				newest = txns[0]
			}
			tmpWatch = make(chan struct{})
			go func() {
				defer close(tmpWatch)
				for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
					tmps, _ := filepath.Glob(filepath.Join(ckptDir, "*"+checkpoint.TempSuffix))
					txns, _ := checkpoint.List(ckptDir)
					if len(tmps) > 0 || (len(txns) > 0 && txns[0] > newest) {
						return
					}
				}
				noTmp = true
			}()
			child.KillWhen(tmpWatch)
		}
		return nil
	})
	if tmpWatch != nil {
		<-tmpWatch // the watcher ends
		if noTmp {
			run.kill += " (no file in 50ms)"
		}
	}
	run.stderr = res.Stderr
	if run.stderr != "" {
		runErr = errors.Join(runErr, errors.New("child wrote to stderr (a race, a panic, a warning or an error of the broker)"))
	}
	return run, runErr
}
