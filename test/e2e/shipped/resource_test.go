package shipped

import (
	"net"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The harness gives a resourceFieldRef the value the kubelet would: the
// container's request or limit over the divisor, rounded up.
func TestResourceFieldRefAsTheKubeletGivesIt(t *testing.T) {
	c := &corev1.Container{Name: "manager", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("50m")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("192Mi")},
	}}
	for _, tc := range []struct {
		ref  corev1.ResourceFieldSelector
		want string
	}{
		{corev1.ResourceFieldSelector{Resource: "limits.memory"}, "201326592"},
		{corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}, "192"},
		{corev1.ResourceFieldSelector{Resource: "requests.memory", ContainerName: "manager"}, "67108864"},
		{corev1.ResourceFieldSelector{Resource: "requests.cpu"}, "1"},
		{corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}, "50"},
	} {
		got, ok, err := resourceValue(c, &tc.ref)
		if err != nil || !ok || got != tc.want {
			t.Errorf("%s / %s: got %q, %v, %v; want %q", tc.ref.Resource, tc.ref.Divisor.String(), got, ok, err, tc.want)
		}
	}
	if _, _, err := resourceValue(c, &corev1.ResourceFieldSelector{Resource: "limits.cpu"}); err == nil {
		t.Error("a limit the container does not set: want an error, the harness has no node's allocatable")
	}
}

// Replicas bind ports below the ephemeral range, where no outgoing
// connection can take them between the pick and the bind, and never the
// same one twice.
func TestFreeLoopbackPortsAreBelowTheEphemeralRange(t *testing.T) {
	_, hi := portsBelowEphemeral()
	seen := map[string]bool{}
	for range 50 {
		a, err := freeLoopback()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(a)
		if n, _ := strconv.Atoi(port); n < 10000 || n >= hi {
			t.Fatalf("%s is not in [10000, %d)", a, hi)
		}
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}
