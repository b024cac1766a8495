package electric

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tidings/tidings/index"
	"github.com/tidings/tidings/subscription"
)

// shapeRequest is a GET /v1/shape request, read and checked.
type shapeRequest struct {
	table  string
	target subscription.Target // what the shape follows, as Authorize sees it
	// read is the target read: target, but for one document its
	// collection, with only set, since the broker follows no document
	// that does not exist yet, and a shape of one starts empty.
	read        subscription.Target
	only        string
	columns     []string // the projection, sorted, with id; nil for every field
	changesOnly bool     // log=changes_only: no initial rows
	def         string   // the shape's canonical definition, for the handle
	offset      offset
	handle      string
	live, sse   bool
	cursor      string // the request's cursor, echoed into the next one
	expired     string // expired_handle: a handle the client was told to drop
}

// maxParam bounds every parameter this endpoint reads.
const maxParam = 4096

// parseRequest reads a request's parameters. Parameters it does not know
// are ignored, as Electric does: the client adds its own (cursor,
// cache-buster, expired_handle, log=full) and users add theirs (auth).
func parseRequest(r *http.Request, schema index.Schema) (*shapeRequest, error) {
	q := r.URL.Query()
	for k, v := range q {
		if strings.HasPrefix(k, "subset__") {
			return nil, &paramError{"subset", "subset snapshots (requestSnapshot, fetchSnapshot) are not served"}
		}
		if len(v) > 0 && len(v[0]) > maxParam {
			return nil, &paramError{k, "longer than " + strconv.Itoa(maxParam) + " bytes"}
		}
	}
	req := &shapeRequest{table: q.Get("table"), handle: q.Get("handle"), cursor: q.Get("cursor"), expired: q.Get("expired_handle")}
	if req.table == "" {
		return nil, &paramError{"table", "missing: give the collection to sync"}
	}
	params, err := parseParams(q)
	if err != nil {
		return nil, err
	}
	if req.target, err = shapeTarget(req.table, q.Get("where"), params, schema); err != nil {
		return nil, err
	}
	req.read = req.target
	if req.target.Kind == subscription.KindDocument {
		req.read, req.only = subscription.Collection(req.target.Ref.Collection), req.target.Ref.ID
	}
	if c := q.Get("columns"); c != "" {
		if req.columns, err = parseColumns(c); err != nil {
			return nil, err
		}
	}
	switch q.Get("replica") {
	case "", "default":
	case "full":
		return nil, &paramError{"replica", "replica=full is not served: updates carry the changed fields, removed ones as null"}
	default:
		return nil, &paramError{"replica", "must be default or full"}
	}
	switch q.Get("log") {
	case "", "full":
	case "changes_only":
		req.changesOnly = true
	default:
		return nil, &paramError{"log", "must be full or changes_only"}
	}
	o := q.Get("offset")
	if o == "" {
		return nil, &paramError{"offset", "missing: -1 for the initial rows"}
	}
	if req.offset, err = parseOffset(o); err != nil {
		return nil, err
	}
	req.live = q.Get("live") == "true"
	req.sse = q.Get("live_sse") == "true" || q.Get("experimental_live_sse") == "true"
	switch {
	case req.offset.kind == offsetAt && req.handle == "":
		return nil, &paramError{"handle", "missing: an offset other than -1 or now needs the shape's handle"}
	case req.live && req.offset.kind != offsetAt:
		return nil, &paramError{"live", "live needs an offset from an earlier response"}
	case req.sse && !req.live:
		return nil, &paramError{"live_sse", "live_sse needs live=true"}
	}
	req.def = definition(req)
	return req, nil
}

// parseParams reads params[1], params[2]…: the positional values of where.
func parseParams(q map[string][]string) (map[int]string, error) {
	var params map[int]string
	for k, v := range q {
		n, ok := strings.CutPrefix(k, "params[")
		if !ok {
			continue
		}
		n, ok = strings.CutSuffix(n, "]")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 1 || i > 1000 || n != strconv.Itoa(i) {
			return nil, &paramError{"params", k + " is not params[N], N from 1"}
		}
		if params == nil {
			params = map[int]string{}
		}
		params[i] = v[0]
	}
	return params, nil
}

// parseColumns reads columns as the client writes them: names joined by
// commas, each double-quoted with "" inside (bare names are taken too).
// The projection must keep id, the rows' key.
func parseColumns(s string) ([]string, error) {
	var cols []string
	for i := 0; i <= len(s); {
		var name string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, &paramError{"columns", "an unfinished quoted name"}
				}
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			name, i = b.String(), j+1
		} else {
			j := strings.IndexByte(s[i:], ',')
			if j < 0 {
				j = len(s) - i
			}
			name, i = strings.TrimSpace(s[i:i+j]), i+j
		}
		if name == "" {
			return nil, &paramError{"columns", "an empty name"}
		}
		cols = append(cols, name)
		if i == len(s) {
			break
		}
		if s[i] != ',' {
			return nil, &paramError{"columns", "names are separated by commas"}
		}
		i++
	}
	slices.Sort(cols)
	cols = slices.Compact(cols)
	if !slices.Contains(cols, "id") {
		return nil, &paramError{"columns", "must include id, the rows' key"}
	}
	return cols, nil
}

// definition is what a handle stands for: the target, the projection and
// the log mode, written canonically (two requests for the same shape,
// whatever the spelling of their where, have the same definition).
func definition(req *shapeRequest) string {
	var b strings.Builder
	b.WriteString(req.target.String())
	b.WriteString("\x00")
	b.WriteString(strings.Join(req.columns, "\x01"))
	if req.changesOnly {
		b.WriteString("\x00changes_only")
	}
	return b.String()
}
