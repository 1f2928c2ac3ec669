package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/config/admission"
)

// FieldOwner is the server-side apply field manager of the operator.
const FieldOwner = "alertbridge"

// DefaultAdmissionWait bounds how long the operator waits for a freshly
// installed admission policy to take effect.
const DefaultAdmissionWait = time.Minute

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingadmissionpolicies;mutatingadmissionpolicybindings,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=create

func finalizerPolicyObjects() ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(admission.MirrorFinalizerPolicy), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("failed to decode the embedded admission policy: %w", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// InstallFinalizerPolicy applies the MutatingAdmissionPolicy that puts the
// mirror finalizer on new objects, then waits until a dry-run create in
// probeNamespace comes back with the finalizer: a new policy takes a moment
// to reach the admission chain, and the operator is not ready before. A
// cluster that serves no MutatingAdmissionPolicy API is logged, and the
// reconcilers add the finalizer instead (too late for an Alert deleted
// right after creation).
func InstallFinalizerPolicy(ctx context.Context, c client.Client, probeNamespace string, timeout time.Duration) error {
	log := ctrl.LoggerFrom(ctx).WithName("mirror")
	objs, err := finalizerPolicyObjects()
	if err != nil {
		return err
	}
	for _, u := range objs {
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership)
		if meta.IsNoMatchError(err) {
			log.Info("WARNING: the cluster serves no MutatingAdmissionPolicy; the mirror finalizer is added by the reconcilers only", "kind", u.GetKind())
			return nil
		}
		if err != nil {
			return fmt.Errorf("failed to apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	probe := &v1.Alert{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "mirror-probe-", Namespace: probeNamespace},
		Spec:       v1.AlertSpec{Service: "alertbridge", Kind: "mirror_probe", Title: "dry-run probe of the mirror finalizer policy"},
	}
	// While the policy is being loaded the admission chain may refuse
	// creates for a moment; that is "not yet", not a failure.
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p := probe.DeepCopy()
		if lastErr = c.Create(ctx, p, client.DryRunAll); lastErr != nil {
			return false, nil
		}
		return slices.Contains(p.Finalizers, v1.MirrorFinalizer), nil
	})
	if err != nil {
		return fmt.Errorf("failed to see the mirror finalizer policy take effect in %s (last dry-run error: %v): %w", probeNamespace, lastErr, err)
	}
	log.Info("Mirror finalizer policy is in effect")
	return nil
}

// RemoveFinalizerPolicy deletes the binding, so that with the mirror off
// no object gains a finalizer that no one removes.
func RemoveFinalizerPolicy(ctx context.Context, c client.Client) error {
	objs, err := finalizerPolicyObjects()
	if err != nil {
		return err
	}
	for _, u := range objs {
		if u.GetKind() != "MutatingAdmissionPolicyBinding" {
			continue
		}
		err := c.Delete(ctx, u)
		if err == nil || apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			continue
		}
		return fmt.Errorf("failed to delete %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}
