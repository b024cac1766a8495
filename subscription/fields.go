package subscription

import (
	"fmt"
	"strings"
)

// Fields selects what an event carries, as Fauna's stream fields do.
type Fields uint8

// The fields an event may carry.
const (
	FieldAction   Fields = 1 << iota // the action: create, update, delete, add, remove
	FieldDocument                    // the document (ref, ts, and data in version events)
	FieldPrev                        // version events: the document before the write
	FieldDiff                        // version events: what changed between prev and document
	FieldIndex                       // set events: the entry's terms and values

	// DefaultFields is Fauna's default: action and document.
	DefaultFields = FieldAction | FieldDocument
	allFields     = FieldAction | FieldDocument | FieldPrev | FieldDiff | FieldIndex
)

var fieldNames = []struct {
	f    Fields
	name string
}{{FieldAction, "action"}, {FieldDocument, "document"}, {FieldPrev, "prev"}, {FieldDiff, "diff"}, {FieldIndex, "index"}}

// ParseFields reads a comma-separated list such as "action,document,diff".
// The list replaces the default, as in Fauna; an empty list is the default.
func ParseFields(s string) (Fields, error) {
	if strings.TrimSpace(s) == "" {
		return DefaultFields, nil
	}
	var fs Fields
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		found := false
		for _, n := range fieldNames {
			if n.name == part {
				fs |= n.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: unknown field %q (known: action, document, prev, diff, index)", ErrInvalidOptions, part)
		}
	}
	return fs, nil
}

// String lists the fields as ParseFields reads them.
func (f Fields) String() string {
	var parts []string
	for _, n := range fieldNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}
