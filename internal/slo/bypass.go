package slo

import (
	"context"
	"fmt"
	"maps"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
)

// DefaultMaxBypass applies when a policy sets no gate.maxBypass.
const DefaultMaxBypass = 24 * time.Hour

// MaxBypass is the longest bypass p allows.
func MaxBypass(p *v1.SLOPolicy) time.Duration {
	if p.Spec.Gate.MaxBypass != nil {
		return p.Spec.Gate.MaxBypass.Duration
	}
	return DefaultMaxBypass
}

// BypassAnnotations are the annotations of a bypass until until, for
// reason, set by by (the user the API server authenticated).
func BypassAnnotations(until time.Time, reason, by string) map[string]string {
	return map[string]string{
		v1.BypassUntilAnnotation:  until.UTC().Truncate(time.Second).Format(time.RFC3339),
		v1.BypassReasonAnnotation: reason,
		v1.BypassByAnnotation:     by,
	}
}

// WriteBypass replaces the bypass annotations of the SLOPolicy key with ann
// (nil or empty: clear the bypass), as `alertbridge slo bypass` and the
// HTTP API do. It is a merge patch under the resourceVersion read, so a
// bypass set or cleared by someone else in between is never overwritten
// unseen; a conflict is read again and retried with jittered backoff
// (kube.RetryConflicts), as a command or an HTTP request has no work queue
// to return to. The
// admission policies alertbridge-slopolicy-edit and alertbridge-bypass-by
// judge the write.
func WriteBypass(ctx context.Context, c client.Client, key client.ObjectKey, ann map[string]string) (*v1.SLOPolicy, error) {
	var p v1.SLOPolicy
	err := kube.RetryConflicts(ctx, "SLOPolicy "+key.String(), func() error {
		p = v1.SLOPolicy{}
		if err := c.Get(ctx, key, &p); err != nil {
			return err
		}
		orig := p.DeepCopy()
		for _, a := range []string{v1.BypassUntilAnnotation, v1.BypassReasonAnnotation, v1.BypassByAnnotation} {
			delete(p.Annotations, a)
		}
		if len(ann) > 0 && p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		maps.Copy(p.Annotations, ann)
		return c.Patch(ctx, &p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return nil, fmt.Errorf("failed to write the bypass on SLOPolicy %s: %w", key, err)
	}
	return &p, nil
}
