package mirror

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/incident"
	mirrordb "github.com/alertbridge/alertbridge/internal/mirror"
)

var alertKind = kindSpec[*v1.Alert]{
	name:   "alert",
	newObj: func() *v1.Alert { return &v1.Alert{} },
	write: func(ctx context.Context, _ client.Client, s *mirrordb.Store, a *v1.Alert) error {
		_, err := s.UpsertAlert(ctx, a)
		return err
	},
	// Acked and Deduplicated Alerts are finished.
	deletableAt: func(a *v1.Alert, retention time.Duration) (time.Time, bool) {
		switch a.Status.Phase {
		case v1.AlertAcked:
			if a.Status.Ack != nil {
				at := a.Status.Ack.At.Add(retention)
				// It answers a retry of the requests it counted as a
				// replay for KeyWindow after the last of them; deleted
				// sooner (resolvedInCluster under 5 minutes), the retry
				// would count again.
				if seen := a.Status.LastSeenAt; seen != nil && len(alertstate.HeldKeys(a)) > 0 {
					if kept := seen.Add(alertstate.KeyWindow); kept.After(at) {
						at = kept
					}
				}
				return at, true
			}
		case v1.AlertDeduplicated:
			if t := alertstate.DeduplicatedAt(&a.Status); !t.IsZero() {
				return t.Add(retention), true
			}
		}
		return time.Time{}, false
	},
}

var incidentKind = kindSpec[*v1.Incident]{
	name:   "incident",
	newObj: func() *v1.Incident { return &v1.Incident{} },
	write:  writeIncident,
	// A Closed Incident carries its signature's triage cooldown; it stays
	// until the cooldown ends so a new Incident can inherit it.
	deletableAt: func(in *v1.Incident, retention time.Duration) (time.Time, bool) {
		at := incident.DeletableAt(in, retention)
		return at, !at.IsZero()
	},
}

// writeIncident writes the row and the new timeline entries, then records
// in status.mirroredTimelineSeq how far the timeline is mirrored, so the
// Incident controller may trim entries at or below it.
func writeIncident(ctx context.Context, c client.Client, s *mirrordb.Store, in *v1.Incident) error {
	seq, err := s.UpsertIncident(ctx, in, in.Status.MirroredTimelineSeq)
	if err != nil {
		return err
	}
	if seq <= in.Status.MirroredTimelineSeq {
		return nil
	}
	patch := fmt.Appendf(nil, `{"status":{"mirroredTimelineSeq":%d}}`, seq)
	if err := c.Status().Patch(ctx, in, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("failed to record mirroredTimelineSeq of Incident %s: %w", klog.KObj(in), err)
	}
	return nil
}

var sloPolicyKind = kindSpec[*v1.SLOPolicy]{
	name:   "slopolicy",
	newObj: func() *v1.SLOPolicy { return &v1.SLOPolicy{} },
	write: func(ctx context.Context, _ client.Client, s *mirrordb.Store, p *v1.SLOPolicy) error {
		return s.RecordSLOPolicy(ctx, p)
	},
}
