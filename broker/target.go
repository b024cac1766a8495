package broker

import (
	"fmt"

	"github.com/tidings/tidings/internal/entrystore"
	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// docTarget checks a document target: a ref that a write accepts (see
// checkRef), in a collection of cat. The error wraps
// subscription.ErrInvalidTarget and ErrInvalidRef or ErrUnknownCollection.
func docTarget(cat *entrystore.Catalog, ref txlog.Ref) error {
	if err := checkRef(ref); err != nil {
		return fmt.Errorf("%w: %w", subscription.ErrInvalidTarget, err)
	}
	if _, err := cat.CollectionSet(ref.Collection); err != nil {
		return fmt.Errorf("%w: %w", subscription.ErrInvalidTarget, err)
	}
	return nil
}

// setOf returns the key of a set target in cat: an unknown collection or
// index, or the wrong number of terms, is an error that wraps
// subscription.ErrInvalidTarget and the index package's own sentinel.
func setOf(cat *entrystore.Catalog, t subscription.Target) (entrystore.SetKey, error) {
	var k entrystore.SetKey
	var err error
	switch t.Kind {
	case subscription.KindCollection:
		k, err = cat.CollectionSet(t.Collection)
	case subscription.KindIndex:
		k, err = cat.MatchSet(t.Index, t.Terms...)
	default:
		return k, fmt.Errorf("%w: a document is not a set", subscription.ErrInvalidTarget)
	}
	if err != nil {
		return k, fmt.Errorf("%w: %w", subscription.ErrInvalidTarget, err)
	}
	return k, nil
}
