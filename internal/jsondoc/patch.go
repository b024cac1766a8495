package jsondoc

import "bytes"

// DiffData returns what changed from prev to next, two compact JSON objects
// (either may be nil, standing for {}): the fields next adds or changes with
// their new values, the fields it removes as null, nested objects diffed
// field by field, and arrays (and every other value) replaced whole. Fields
// come in next's order, then the removed ones in prev's. Two values differ
// when their JSON text does.
func DiffData(prev, next []byte) ([]byte, error) {
	return appendDiff(nil, prev, next)
}

func appendDiff(dst, prev, next []byte) ([]byte, error) {
	var pm, nm []member
	var err error
	if prev != nil {
		if pm, err = objectMembers(prev); err != nil {
			return nil, err
		}
	}
	if next != nil {
		if nm, err = objectMembers(next); err != nil {
			return nil, err
		}
	}
	old := make(map[string][]byte, len(pm))
	for _, m := range pm {
		old[m.key] = m.val
	}
	dst = append(dst, '{')
	first := true
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	for _, m := range nm {
		was, ok := old[m.key]
		delete(old, m.key)
		switch {
		case ok && bytes.Equal(was, m.val):
			continue
		case ok && isObject(was) && isObject(m.val):
			sub, err := appendDiff(nil, was, m.val)
			if err != nil {
				return nil, err
			}
			if len(sub) == 2 { // {}: equal apart from spelling
				continue
			}
			sep()
			dst = AppendString(dst, m.key)
			dst = append(dst, ':')
			dst = append(dst, sub...)
		default:
			sep()
			dst = AppendString(dst, m.key)
			dst = append(dst, ':')
			dst = append(dst, m.val...)
		}
	}
	for _, m := range pm {
		if _, removed := old[m.key]; removed {
			sep()
			dst = AppendString(dst, m.key)
			dst = append(dst, ":null"...)
		}
	}
	return append(dst, '}'), nil
}

// MergePatch applies an update to a document's data: each field of patch
// replaces the field of data, null removes it, and a nested object is
// merged field by field into an object in data (JSON Merge Patch, RFC
// 7396, as Fauna's Update). Both are compact JSON objects; data may be nil.
func MergePatch(data, patch []byte) ([]byte, error) {
	var dm []member
	var err error
	if data != nil {
		if dm, err = objectMembers(data); err != nil {
			return nil, err
		}
	}
	pm, err := objectMembers(patch)
	if err != nil {
		return nil, err
	}
	at := make(map[string]int, len(dm))
	for i, m := range dm {
		at[m.key] = i
	}
	for _, p := range pm {
		i, ok := at[p.key]
		switch {
		case string(p.val) == "null":
			if ok {
				dm[i].val = nil
			}
		case ok && isObject(dm[i].val) && isObject(p.val):
			merged, err := MergePatch(dm[i].val, p.val)
			if err != nil {
				return nil, err
			}
			dm[i].val = merged
		case isObject(p.val):
			// A new object: merging into nothing drops its nulls.
			merged, err := MergePatch(nil, p.val)
			if err != nil {
				return nil, err
			}
			if ok {
				dm[i].val = merged
			} else {
				at[p.key] = len(dm)
				dm = append(dm, member{p.key, merged})
			}
		case ok:
			dm[i].val = p.val
		default:
			at[p.key] = len(dm)
			dm = append(dm, member{p.key, p.val})
		}
	}
	kept := dm[:0]
	for _, m := range dm {
		if m.val != nil {
			kept = append(kept, m)
		}
	}
	return appendObject(nil, kept), nil
}
