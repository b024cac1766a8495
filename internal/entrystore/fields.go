package entrystore

import "github.com/tidings/tidings/index"

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
