package controllers

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// secretNotAllowedError is a secretRef naming a Secret the operator never
// sends anywhere. Admission (config/admission/credentials_policy.yaml)
// makes sure whoever names a Secret may read it, but it cannot see the
// Secret's type; so the operator refuses at use, whoever set the policy.
type secretNotAllowedError struct {
	field, name string
}

func (e *secretNotAllowedError) Error() string {
	return fmt.Sprintf("%s: Secret %s holds a Kubernetes ServiceAccount token (type %s), which alertbridge never sends anywhere: "+
		"its receiver could act as that ServiceAccount in this cluster; put a credential made for this endpoint in a Secret of type Opaque",
		e.field, e.name, corev1.SecretTypeServiceAccountToken)
}

// refuseCredentials says why s, named by field, must not be sent as a
// credential; nil when it may be.
func refuseCredentials(s *corev1.Secret, field string) error {
	if s.Type == corev1.SecretTypeServiceAccountToken {
		return &secretNotAllowedError{field: field, name: s.Name}
	}
	return nil
}

// The ClusterRoles a namespace admin binds, in that namespace, to the
// operator's ServiceAccount to let it use the credentials its objects name
// and run triage Jobs there (config/rbac/grants_roles.yaml). The operator
// holds neither right cluster-wide, so a namespace that does not opt in
// keeps its Secrets and its pods to itself.
const (
	CredentialsRole = "alertbridge-credentials"
	TriageJobsRole  = "alertbridge-triage-jobs"
)

// Grants says how a namespace grants the operator a right, in the message
// of a refused read or create.
type Grants struct {
	// ServiceAccount is the operator's own (the controller manager's);
	// empty when it runs as something else (a person's kubeconfig).
	ServiceAccount types.NamespacedName
}

// notGrantedError is a read of a Secret or a create of a Job the API
// server refused because the namespace has not bound role to the operator.
type notGrantedError struct {
	ns, action, role, how string
	err                   error
}

func (e *notGrantedError) Error() string {
	return fmt.Sprintf("alertbridge may not %s in namespace %s: a namespace admin grants it by binding the ClusterRole %s to alertbridge there (%s)",
		e.action, e.ns, e.role, e.how)
}

func (e *notGrantedError) Unwrap() error { return e.err }

// notGranted returns err as a *notGrantedError when the API server
// refused it (Forbidden), else err.
func (g Grants) notGranted(err error, ns, action, role string) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	how := "kubectl create rolebinding " + role + " -n " + ns + " --clusterrole=" + role
	if sa := g.ServiceAccount; sa.Name != "" {
		how += " --serviceaccount=" + sa.Namespace + ":" + sa.Name
	} else {
		how += " --user=USER-ALERTBRIDGE-RUNS-AS"
	}
	return &notGrantedError{ns: ns, action: action, role: role, how: how, err: err}
}

// isNotGranted says whether err is, or wraps, a refusal of a right the
// namespace has not granted.
func isNotGranted(err error) bool {
	var ng *notGrantedError
	return errors.As(err, &ng)
}

// setCredentialsCondition keeps CredentialsAvailable on an object that
// names the Secret secret (none: the condition goes): True when the Secret
// was read (readErr nil); False when the namespace has not granted the
// read (NotGranted), the Secret is not there (SecretMissing) or may not be
// sent (SecretNotAllowed). A read that failed for a passing reason (the
// API server unreachable) leaves the condition as it was.
func setCredentialsCondition(conds *[]metav1.Condition, secret string, readErr error, gen int64) {
	c := metav1.Condition{Type: v1.ConditionCredentialsAvailable, Status: metav1.ConditionFalse, ObservedGeneration: gen}
	var notAllowed *secretNotAllowedError
	switch {
	case secret == "":
		meta.RemoveStatusCondition(conds, v1.ConditionCredentialsAvailable)
		return
	case readErr == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1.ReasonCredentialsRead, "Secret "+secret+" read"
	case isNotGranted(readErr):
		c.Reason, c.Message = v1.ReasonNotGranted, readErr.Error()
	case apierrors.IsNotFound(readErr):
		c.Reason, c.Message = v1.ReasonSecretMissing, readErr.Error()
	case errors.As(readErr, &notAllowed):
		c.Reason, c.Message = v1.ReasonSecretNotAllowed, readErr.Error()
	default:
		return
	}
	meta.SetStatusCondition(conds, c)
}
