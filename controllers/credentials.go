package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
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
