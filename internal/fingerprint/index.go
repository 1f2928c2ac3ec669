package fingerprint

// The index finds the Alerts of one fingerprint in a cache. The
// fingerprint is computed from the spec, so Alerts nobody has labelled yet
// are found too. The Alert controller and the HTTP intake share it, so both
// see the same set.

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// IndexField is the cache index name.
const IndexField = "alertbridge.fingerprint"

// Of is the Alert's effective fingerprint (status.fingerprint).
func Of(a *v1.Alert) string {
	return Effective(a.Spec.Fingerprint, a.Spec.Service, a.Spec.Env, a.Spec.Kind, a.Spec.Labels)
}

// Key is the label-safe fingerprint: the index key and the value of the
// ops.alertbridge.io/fingerprint label.
func Key(a *v1.Alert) string { return LabelValue(Of(a)) }

// KeyOfSpec is Key for a spec that is not an object yet.
func KeyOfSpec(s *v1.AlertSpec) string { return Key(&v1.Alert{Spec: *s}) }

// registered remembers the caches that have the index: the Alert
// controller and the HTTP intake each need it, and a process that runs both
// (a test, a local run) has one cache, which refuses a second registration.
var registered sync.Map

// RegisterIndex adds the index to a cache, once.
func RegisterIndex(ctx context.Context, indexer client.FieldIndexer) error {
	if _, loaded := registered.LoadOrStore(indexer, true); loaded {
		return nil
	}
	if err := indexer.IndexField(ctx, &v1.Alert{}, IndexField, func(o client.Object) []string {
		return []string{Key(o.(*v1.Alert))}
	}); err != nil {
		registered.Delete(indexer)
		return fmt.Errorf("failed to index Alerts by fingerprint: %w", err)
	}
	return nil
}

// List returns the Alerts of one fingerprint in a namespace.
func List(ctx context.Context, c client.Reader, namespace, key string) ([]v1.Alert, error) {
	var list v1.AlertList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{IndexField: key}); err != nil {
		return nil, fmt.Errorf("failed to list Alerts of fingerprint %s/%s: %w", namespace, key, err)
	}
	return list.Items, nil
}
