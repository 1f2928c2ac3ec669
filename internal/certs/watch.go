package certs

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// objectKind is what a named watch follows.
type objectKind int

const (
	secrets objectKind = iota
	configMaps
)

// namedInformer lists and watches the one object key of kind: a field
// selector on its name, which a Role with resourceNames allows.
func namedInformer(c kubernetes.Interface, key types.NamespacedName, kind objectKind) (informers.SharedInformerFactory, cache.SharedIndexInformer) {
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0,
		informers.WithNamespace(key.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", key.Name).String()
		}))
	if kind == configMaps {
		return factory, factory.Core().V1().ConfigMaps().Informer()
	}
	return factory, factory.Core().V1().Secrets().Informer()
}

// watch wakes the Rotator whenever one of the objects it keeps changes or
// goes, so that a Secret or ConfigMap deleted by hand is back at once
// rather than at the next periodic look. It runs beside the Rotator, on the
// leader.
type watch struct {
	client kubernetes.Interface
	key    types.NamespacedName
	kind   objectKind
	nudge  chan<- struct{}
}

func newWatch(c kubernetes.Interface, key types.NamespacedName, kind objectKind, nudge chan<- struct{}) *watch {
	return &watch{client: c, key: key, kind: kind, nudge: nudge}
}

// NeedLeaderElection is true: only the leader's Rotator listens.
func (*watch) NeedLeaderElection() bool { return true }

// Start watches until ctx ends.
func (w *watch) Start(ctx context.Context) error {
	factory, informer := namedInformer(w.client, w.key, w.kind)
	poke := func(any) { nudge(w.nudge) }
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, obj any) { poke(obj) },
		DeleteFunc: poke,
	}); err != nil {
		return fmt.Errorf("failed to watch %s: %w", w.key, err)
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// nudge signals c without blocking: signals coalesce.
func nudge(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
