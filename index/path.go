package index

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParsePath splits a field path into the keys it follows: "stats.level"
// is ["stats", "level"]. Every key must be non-empty valid UTF-8; a key
// cannot contain a dot. Errors wrap ErrInvalidPath.
//
// A path reads through objects only: where a key on the way is missing or
// its value is not an object, the field is missing (null). The last key's
// value may be an array, which fans out into one entry per element.
func ParsePath(path string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalidPath)
	}
	if !utf8.ValidString(path) {
		return nil, fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidPath, path)
	}
	keys := strings.Split(path, ".")
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("%w: %q has an empty key (a leading, trailing or doubled dot)", ErrInvalidPath, path)
		}
	}
	return keys, nil
}

// fieldNode is one key in the tree of field paths that a collection's
// indexes read. One pass over a document follows the tree, descending only
// into objects some path goes through.
type fieldNode struct {
	children map[string]*fieldNode
	slot     int   // the slot of the path ending here, or -1
	subtree  []int // slots at or below this node
}

func newFieldNode() *fieldNode { return &fieldNode{slot: -1} }

// add returns the slot of path (already validated), adding it if new;
// next is the slot number to give a new path.
func (n *fieldNode) add(path string, next int) (slot int, added bool) {
	keys, _ := ParsePath(path)
	for _, k := range keys {
		c := n.children[k]
		if c == nil {
			if n.children == nil {
				n.children = map[string]*fieldNode{}
			}
			c = newFieldNode()
			n.children[k] = c
		}
		n = c
	}
	if n.slot >= 0 {
		return n.slot, false
	}
	n.slot = next
	return next, true
}

// finish fills in subtree for n and everything below it.
func (n *fieldNode) finish() []int {
	n.subtree = n.subtree[:0]
	if n.slot >= 0 {
		n.subtree = append(n.subtree, n.slot)
	}
	for _, c := range n.children {
		n.subtree = append(n.subtree, c.finish()...)
	}
	return n.subtree
}
