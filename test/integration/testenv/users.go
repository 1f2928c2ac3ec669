package testenv

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/kube"
)

// bindingWait bounds how long the authorizer may take to learn a binding.
const bindingWait = 30 * time.Second

// UserIn binds clusterRole (one of the shipped roles) in ns to user, or to
// groups[0] when groups are given, as a team is bound, and returns a
// client acting as user in groups through impersonation. It returns once
// the API server's authorizer grants the role's first rule to that user,
// so that a spec's first request does not race the binding.
func (e *Env) UserIn(ctx context.Context, ns, clusterRole, user string, groups ...string) (client.Client, error) {
	admin, err := kubernetes.NewForConfig(e.Admin)
	if err != nil {
		return nil, err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: clusterRole + "-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if len(groups) > 0 {
		// One binding per team: binding it again is a no-op.
		rb.GenerateName, rb.Name = "", strings.ReplaceAll(groups[0], ":", "-")
		rb.Subjects[0].Kind, rb.Subjects[0].Name = rbacv1.GroupKind, groups[0]
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("failed to bind %s to %s in %s: %w", clusterRole, user, ns, err)
	}
	role, err := admin.RbacV1().ClusterRoles().Get(ctx, clusterRole, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to read ClusterRole %s: %w", clusterRole, err)
	}
	if attrs := firstGrant(role, ns); attrs != nil {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: slices.Concat(groups, []string{"system:authenticated"}), ResourceAttributes: attrs,
		}}
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, bindingWait, true, func(ctx context.Context) (bool, error) {
			got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			return err == nil && got.Status.Allowed, nil
		})
		if err != nil {
			return nil, fmt.Errorf("the authorizer did not learn that %s holds %s in %s: %w", user, clusterRole, ns, err)
		}
	}
	return client.New(e.As(user, groups...), client.Options{Scheme: kube.NewScheme()})
}

// firstGrant is the first request role allows in ns, as a review asks it.
func firstGrant(role *rbacv1.ClusterRole, ns string) *authorizationv1.ResourceAttributes {
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 || len(r.APIGroups) == 0 || len(r.Resources) == 0 || len(r.Verbs) == 0 {
			continue
		}
		resource, sub, _ := strings.Cut(r.Resources[0], "/")
		return &authorizationv1.ResourceAttributes{
			Namespace: ns, Group: r.APIGroups[0], Resource: resource, Subresource: sub, Verb: r.Verbs[0],
		}
	}
	return nil
}

// OperatorClient is an uncached client acting as the controller manager's
// ServiceAccount: specs set up, as the operator, what only the operator
// may write (the admission policies exempt no one else, cluster
// administrators included).
func (e *Env) OperatorClient() (client.Client, error) {
	return client.New(e.Operator, client.Options{Scheme: kube.NewScheme()})
}

// Grant binds, in ns, the grant ClusterRole role (alertbridge-credentials
// or alertbridge-triage-jobs) to the operator's ServiceAccount, as a
// namespace admin opting in does, and returns once the authorizer knows.
func (e *Env) Grant(ctx context.Context, ns, role string) error {
	admin, err := kubernetes.NewForConfig(e.Admin)
	if err != nil {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: e.Install.Namespace, Name: e.Install.ServiceAccount}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to grant %s in %s: %w", role, ns, err)
	}
	cr, err := admin.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to read ClusterRole %s: %w", role, err)
	}
	attrs := firstGrant(cr, ns)
	if attrs == nil {
		return nil
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: e.Install.Username(), Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + e.Install.Namespace, "system:authenticated"},
		ResourceAttributes: attrs,
	}}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, bindingWait, true, func(ctx context.Context) (bool, error) {
		got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		return err == nil && got.Status.Allowed, nil
	})
}
