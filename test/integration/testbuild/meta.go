package testbuild

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// objectMeta holds the metadata setters every builder shares; W is the
// builder, which each setter returns so that calls chain.
type objectMeta[W any] struct {
	m    *metav1.ObjectMeta
	self W
}

// GenerateName has the API server name the object prefix and a random
// suffix, instead of a fixed name.
func (o objectMeta[W]) GenerateName(prefix string) W {
	o.m.Name, o.m.GenerateName = "", prefix
	return o.self
}

// Name gives the object a fixed name.
func (o objectMeta[W]) Name(name string) W {
	o.m.Name, o.m.GenerateName = name, ""
	return o.self
}

// UID sets metadata.uid, which only objects that never reach an API server
// (fake clients, mirror rows) carry from the start.
func (o objectMeta[W]) UID(uid string) W {
	o.m.UID = types.UID(uid)
	return o.self
}

// ResourceVersion sets metadata.resourceVersion.
func (o objectMeta[W]) ResourceVersion(rv string) W {
	o.m.ResourceVersion = rv
	return o.self
}

// Created sets metadata.creationTimestamp.
func (o objectMeta[W]) Created(t time.Time) W {
	o.m.CreationTimestamp = metav1.NewTime(t)
	return o.self
}

// Deleting sets metadata.deletionTimestamp: the object is being deleted.
func (o objectMeta[W]) Deleting(t time.Time) W {
	o.m.DeletionTimestamp = &metav1.Time{Time: t}
	return o.self
}

// MetaLabel adds the metadata label k=v (Alert's Labels sets spec.labels).
func (o objectMeta[W]) MetaLabel(k, v string) W {
	if o.m.Labels == nil {
		o.m.Labels = map[string]string{}
	}
	o.m.Labels[k] = v
	return o.self
}

// MetaLabels adds metadata labels; a nil map adds none.
func (o objectMeta[W]) MetaLabels(labels map[string]string) W {
	for k, v := range labels {
		o.MetaLabel(k, v)
	}
	return o.self
}

// Annotations adds annotations; a nil map adds none.
func (o objectMeta[W]) Annotations(annotations map[string]string) W {
	for k, v := range annotations {
		o.Annotation(k, v)
	}
	return o.self
}

// Annotation adds the annotation k=v.
func (o objectMeta[W]) Annotation(k, v string) W {
	if o.m.Annotations == nil {
		o.m.Annotations = map[string]string{}
	}
	o.m.Annotations[k] = v
	return o.self
}

// Finalizers adds finalizers.
func (o objectMeta[W]) Finalizers(f ...string) W {
	o.m.Finalizers = append(o.m.Finalizers, f...)
	return o.self
}

// newMeta is the metadata of an object named name (generated when empty)
// in namespace ns.
func newMeta(name, ns string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns}
}

// duration is d as the API's *metav1.Duration.
func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// timeRef is t as the API's *metav1.Time.
func timeRef(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }
