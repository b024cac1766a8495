package entrystore

import "github.com/tidings/tidings/index"

// fieldNode is one key in the tree of field paths that a collection's
// indexes read. One pass over a document follows the tree, descending only
// into objects some path goes through.
type fieldNode struct {
	children map[string]*fieldNode
	// names and kids are the children again, when few: comparing a key
	// with a few names costs less than hashing it, and every key of every
	// document scanned is looked up.
	names   []string
	kids    []*fieldNode
	slot    int   // the slot of the path ending here, or -1
	subtree []int // slots at or below this node
}

func newFieldNode() *fieldNode { return &fieldNode{slot: -1} }

// add returns the slot of path (already validated), adding it if new;
// next is the slot number to give a new path.
func (n *fieldNode) add(path string, next int) (slot int, added bool) {
	keys, _ := index.ParsePath(path)
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

// fewChildren is the most children searched by comparing names.
const fewChildren = 8

// child returns the child named key, or nil. n has children.
func (n *fieldNode) child(key []byte) *fieldNode {
	if n.names == nil {
		return n.children[string(key)]
	}
	for i, name := range n.names {
		if name == string(key) {
			return n.kids[i]
		}
	}
	return nil
}

// finish fills in subtree (and names and kids) for n and everything below
// it.
func (n *fieldNode) finish() []int {
	n.subtree = n.subtree[:0]
	n.names, n.kids = nil, nil
	if n.slot >= 0 {
		n.subtree = append(n.subtree, n.slot)
	}
	for name, c := range n.children {
		n.subtree = append(n.subtree, c.finish()...)
		if len(n.children) <= fewChildren {
			n.names, n.kids = append(n.names, name), append(n.kids, c)
		}
	}
	return n.subtree
}
