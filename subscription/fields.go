package subscription

import (
	"encoding/json"
	"errors"
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
	FieldDiff                        // version events and set updates: what changed between prev and document
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

// MarshalJSON writes the fields as a JSON list of names, as stream
// requests carry them: ["action","document"].
func (f Fields) MarshalJSON() ([]byte, error) {
	names := []string{}
	for _, n := range fieldNames {
		if f&n.f != 0 {
			names = append(names, n.name)
		}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads a JSON list of names, or one comma-separated string
// of them (as the query parameter fields is written); unknown names fail
// with ErrInvalidOptions. An empty list is DefaultFields, as in
// ParseFields.
func (f *Fields) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.New(`"fields" must be a list of strings or a comma-separated string`))
		}
		list = []string{s}
	}
	fs, err := ParseFields(strings.Join(list, ","))
	if err != nil {
		return err
	}
	*f = fs
	return nil
}
