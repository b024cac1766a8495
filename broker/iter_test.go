package broker

import (
	"iter"

	"github.com/tidings/tidings/subscription"
)

func iterPull(seq iter.Seq[subscription.Event]) (func() (subscription.Event, bool), func()) {
	return iter.Pull(seq)
}
