package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/installer"
)

// Objects reads every object of a (multi-document) YAML file of this
// repository, so tests install exactly what ships in config/.
func Objects(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- a file of this repository.
	if err != nil {
		return nil, err
	}
	return decode(data)
}

// Decode reads every object of a multi-document YAML (or JSON) stream.
func Decode(data []byte) ([]*unstructured.Unstructured, error) { return decode(data) }

// Build renders the kustomization in dir, as `kubectl apply -k dir` would.
func Build(dir string) ([]*unstructured.Unstructured, error) {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy // namespaces first, as kubectl applies them
	res, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("failed to build the kustomization %s: %w", dir, err)
	}
	data, err := res.AsYaml()
	if err != nil {
		return nil, err
	}
	return decode(data)
}

func decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// FieldManager is the field manager of what tests apply.
const FieldManager = "alertbridge-tests"

// Apply server-side applies objs in order, as `kubectl apply --server-side`.
func Apply(ctx context.Context, c client.Client, objs ...*unstructured.Unstructured) error {
	for _, u := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("failed to apply %s %s: %w", u.GetKind(), client.ObjectKeyFromObject(u), err)
		}
	}
	return nil
}

// Warnings collects the warnings an API server sends (deprecated APIs,
// unknown or duplicate fields, policies in Warn mode), for tests that fail
// on any: set it as a rest.Config's WarningHandler.
type Warnings struct {
	mu   sync.Mutex
	list []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(code int, _, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// List is every warning so far.
func (w *Warnings) List() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// DryRunApply server-side applies objs with dryRun=All through cfg, as
// `kubectl apply --server-side --dry-run=server`, and returns each error and
// each warning the API server answered with (named by object).
func DryRunApply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) (problems []string, err error) {
	cfg = rest.CopyConfig(cfg)
	w := &Warnings{}
	cfg.WarningHandler, cfg.WarningHandlerWithContext = w, nil
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		seen := len(w.List())
		id := fmt.Sprintf("%s %s", u.GetKind(), client.ObjectKeyFromObject(u))
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner(FieldManager), client.ForceOwnership, client.DryRunAll); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", id, err))
		}
		for _, text := range w.List()[seen:] {
			problems = append(problems, fmt.Sprintf("%s: warning: %s", id, text))
		}
	}
	return problems, nil
}

// CreateOnceKindsAreKnown creates obj, retrying for up to a minute while
// the API server's MutatingAdmissionPolicy dispatcher does not yet know a
// CRD's kind: right after the CRDs of a new install are established it
// answers "Resource kind … not found. There can be a delay …" for a moment.
// Any other answer is returned at once.
func CreateOnceKindsAreKnown(ctx context.Context, c client.Client, obj client.Object, opts ...client.CreateOption) error {
	var err error
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err = c.Create(ctx, obj, opts...)
		return err == nil || !strings.Contains(err.Error(), "There can be a delay between when CustomResourceDefinitions are created"), nil
	})
	return err
}

const sentinelLabel = "alertbridge.test/policy-sentinel"

// WaitForPolicies returns once the admission policies applied so far are in
// effect. A new policy reaches the admission chain through the API server's
// informers a moment after it is stored, and they load policies in the order
// they were written: once a sentinel policy written last refuses (or
// mutates) a dry-run, every earlier one applies too.
func WaitForPolicies(ctx context.Context, c client.Client) error {
	name := fmt.Sprintf("alertbridge-test-sentinel-%d", time.Now().UnixNano())
	sentinels, err := decode(fmt.Appendf(nil, sentinelYAML, name, sentinelLabel))
	if err != nil {
		return err
	}
	if err := Apply(ctx, c, sentinels...); err != nil {
		return err
	}
	defer func() {
		for _, u := range sentinels {
			_ = c.Delete(context.Background(), u)
		}
	}()
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			GenerateName: "sentinel-", Namespace: metav1.NamespaceDefault, Labels: map[string]string{sentinelLabel: name},
		}}
		err := c.Create(ctx, cm, client.DryRunAll)
		// The validating sentinel refuses only what the mutating one marked,
		// so its refusal proves both kinds of policy are loaded.
		refused := apierrors.IsInvalid(err) || apierrors.IsForbidden(err)
		return refused && strings.Contains(err.Error(), "sentinel "+name), nil
	})
}

// The mutating sentinel marks the ConfigMap; the validating one refuses a
// marked ConfigMap, so its refusal shows both kinds of policy are loaded.
// Both select only the sentinel's own ConfigMaps and never fail on another
// object: a suite's writes may run while a sentinel is still loaded (it is
// deleted at once, but the API server unloads it a moment later).
const sentinelYAML = `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: %[1]s}
spec:
  matchConstraints:
    objectSelector: {matchLabels: {"%[2]s": "%[1]s"}}
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  matchConditions:
    - name: sentinel
      expression: "has(object.metadata.labels) && '%[2]s' in object.metadata.labels && object.metadata.labels['%[2]s'] == '%[1]s'"
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
    - patchType: JSONPatch
      jsonPatch:
        expression: "[JSONPatch{op: 'add', path: '/metadata/labels/' + jsonpatch.escapeKey('%[2]s-mutated'), value: 'true'}]"
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: %[1]s}
spec: {policyName: %[1]s}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: %[1]s}
spec:
  failurePolicy: Fail
  matchConstraints:
    objectSelector: {matchLabels: {"%[2]s": "%[1]s"}}
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  matchConditions:
    - name: sentinel
      expression: "has(object.metadata.labels) && '%[2]s' in object.metadata.labels && object.metadata.labels['%[2]s'] == '%[1]s'"
  validations:
    - expression: "!('%[2]s-mutated' in object.metadata.labels)"
      message: "sentinel %[1]s"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: %[1]s}
spec: {policyName: %[1]s, validationActions: [Deny]}
`

// waitForRBAC returns once the API server's authorizer sees the bindings of
// user: the RBAC authorizer, too, learns of new bindings through informers.
func waitForRBAC(ctx context.Context, admin *rest.Config, user string, groups []string) error {
	c, err := client.New(admin, client.Options{})
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: append(groups, "system:authenticated"),
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "ops.alertbridge.io", Resource: "alerts", Verb: "watch"},
		}}
		if err := c.Create(ctx, sar); err != nil {
			return false, err
		}
		return sar.Status.Allowed, nil
	})
}

// InstallMirrorFinalizer applies the mirror finalizer component exactly as
// config/default ships it, for a suite that installed WithoutMirrorInstall
// but runs some specs with the mirror on. It returns once the policy is in
// effect, with a function that deletes the component again and returns
// once new objects are admitted without the finalizer.
func InstallMirrorFinalizer(ctx context.Context, c client.Client) (uninstall func(context.Context) error, err error) {
	objs, err := Build(filepath.Join(Root(), MirrorFinalizerComponent))
	if err != nil {
		return nil, err
	}
	if err := Apply(ctx, c, objs...); err != nil {
		return nil, err
	}
	if err := WaitForPolicies(ctx, c); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		// The binding first: without it the policy applies to nothing.
		for _, u := range slices.Backward(objs) {
			if err := client.IgnoreNotFound(c.Delete(ctx, u)); err != nil {
				return fmt.Errorf("failed to delete %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
		return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			a := &v1.Alert{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "finalizer-gone-", Namespace: metav1.NamespaceDefault},
				Spec:       v1.AlertSpec{Service: "alertbridge-tests", Kind: "probe", Title: "is the mirror finalizer policy gone?"},
			}
			if err := c.Create(ctx, a, client.DryRunAll); err != nil {
				return false, err
			}
			return !slices.Contains(a.Finalizers, v1.MirrorFinalizer), nil
		})
	}, nil
}

// Installer renders what `make build-installer` writes for o, from this
// checkout, as objects.
func Installer(o installer.Options) ([]*unstructured.Unstructured, error) {
	o.Root = Root()
	data, err := installer.Build(o)
	if err != nil {
		return nil, err
	}
	return decode(data)
}

// ID names an object as error messages do: kind, namespace/name.
func ID(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}
