package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// alertmanagerDoc is the page that shows Alertmanager's receiver.
const alertmanagerDoc = "docs/agents.md"

// documentedReceivers is the alertmanager.yml block of alertmanagerDoc, as
// written.
func documentedReceivers(t testing.TB) map[string]any {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("../..", alertmanagerDoc))
	must(t, err)
	const open = "```yaml\n# alertmanager.yml\n"
	_, block, ok := strings.Cut(string(doc), open)
	if !ok {
		t.Fatalf("%s has no %q block", alertmanagerDoc, strings.TrimSpace(open))
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		t.Fatalf("the alertmanager.yml block of %s does not end", alertmanagerDoc)
	}
	var conf map[string]any
	must(t, yaml.Unmarshal([]byte(block), &conf))
	return conf
}

// receiverSample is what config/samples/integrations/alertmanager-receiver.yaml
// installs and mounts.
type receiverSample struct {
	bindings []*unstructured.Unstructured
	// serviceAccount is Alertmanager's identity (namespace/name).
	serviceAccount, namespace string
	// mountPath holds the projected token (tokenPath, with audience and
	// expirationSeconds) and the CA (caPath).
	mountPath, tokenPath, caPath string
	audience                     string
	expirationSeconds            int64
}

func readReceiverSample(t testing.TB) receiverSample {
	t.Helper()
	data, err := os.ReadFile("../../config/samples/integrations/alertmanager-receiver.yaml")
	must(t, err)
	var s receiverSample
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else {
			must(t, err)
		}
		switch u.GetKind() {
		case "RoleBinding":
			s.bindings = append(s.bindings, u)
		case "Alertmanager":
			s.namespace = u.GetNamespace()
			s.serviceAccount, _, _ = unstructured.NestedString(u.Object, "spec", "serviceAccountName")
			volumes, _, _ := unstructured.NestedSlice(u.Object, "spec", "volumes")
			mounts, _, _ := unstructured.NestedSlice(u.Object, "spec", "volumeMounts")
			if len(volumes) != 1 || len(mounts) != 1 {
				t.Fatalf("the sample's Alertmanager has %d volumes and %d mounts, want one each", len(volumes), len(mounts))
			}
			s.mountPath, _, _ = unstructured.NestedString(mounts[0].(map[string]any), "mountPath")
			sources, _, _ := unstructured.NestedSlice(volumes[0].(map[string]any), "projected", "sources")
			for _, src := range sources {
				m := src.(map[string]any)
				if tok, ok := m["serviceAccountToken"].(map[string]any); ok {
					s.audience, _ = tok["audience"].(string)
					s.tokenPath, _ = tok["path"].(string)
					if n, ok := tok["expirationSeconds"].(float64); ok {
						s.expirationSeconds = int64(n)
					}
				}
				if items, ok, _ := unstructured.NestedSlice(m, "configMap", "items"); ok && len(items) == 1 {
					s.caPath, _ = items[0].(map[string]any)["path"].(string)
				}
			}
		}
	}
	if s.serviceAccount == "" || s.mountPath == "" || s.tokenPath == "" || s.caPath == "" || s.audience == "" || s.expirationSeconds == 0 || len(s.bindings) == 0 {
		t.Fatalf("the sample misses a piece: %+v", s)
	}
	return s
}

// TestAlertmanagerDocs runs the documented Alertmanager receiver, read from
// docs/agents.md, in Debian's Alertmanager against the API served as shipped
// (TLS with the operator's Secret, audience-bound tokens). Only the host
// changes (it stays the TLS server name) and the directory of the token
// and CA files; the token is the one the sample's projected volume gives
// Alertmanager's ServiceAccount, bound as the sample binds it.
func TestAlertmanagerDocs(t *testing.T) {
	ctx := context.Background()
	sample := readReceiverSample(t)
	conf := documentedReceivers(t)
	receivers, _ := conf["receivers"].([]any)
	if len(receivers) != 1 || len(conf) != 1 {
		t.Fatalf("the documented block should be one receiver and nothing else: %v", conf)
	}
	receiver := receivers[0].(map[string]any)
	hooks, _ := receiver["webhook_configs"].([]any)
	if len(hooks) != 1 {
		t.Fatalf("the documented receiver has %d webhook_configs, want 1", len(hooks))
	}
	hook := hooks[0].(map[string]any)
	httpConfig := hook["http_config"].(map[string]any)
	authz := httpConfig["authorization"].(map[string]any)
	tlsConfig := httpConfig["tls_config"].(map[string]any)

	// The sample installs and mounts what the documented receiver reads.
	tokenFile, caFile := authz["credentials_file"].(string), tlsConfig["ca_file"].(string)
	if tokenFile != filepath.Join(sample.mountPath, sample.tokenPath) || caFile != filepath.Join(sample.mountPath, sample.caPath) {
		t.Fatalf("the documented receiver reads %s and %s; the sample mounts %s/{%s,%s}", tokenFile, caFile, sample.mountPath, sample.tokenPath, sample.caPath)
	}
	u, err := url.Parse(hook["url"].(string))
	must(t, err)
	target := u.Query().Get("namespace")
	for _, ns := range []string{target, sample.namespace} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sample.serviceAccount, Namespace: sample.namespace}}))
	monitorRole(t)
	must(t, testenv.Apply(ctx, k8s, sample.bindings...))

	api := startShipped(t, httpapi.Config{})
	if u.Scheme != "https" || !slices.Contains(certs.ServiceNames("alertbridge-api", env.Install.Namespace), u.Hostname()) || u.Port() != "8090" {
		t.Fatalf("the documented receiver sends to %s, not to the shipped Service alertbridge-api over TLS", u)
	}
	// What the kubelet would put in the mounted directory.
	dir := t.TempDir()
	tr, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ServiceAccounts(sample.namespace).CreateToken(ctx, sample.serviceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{sample.audience}, ExpirationSeconds: ptr.To(sample.expirationSeconds)},
	}, metav1.CreateOptions{})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, sample.tokenPath), []byte(tr.Status.Token), 0o600))
	_, ca := caPool(t)
	must(t, os.WriteFile(filepath.Join(dir, sample.caPath), ca, 0o600))

	// The only changes: the host (kept as the TLS server name) and the
	// directory of the two files.
	tlsConfig["server_name"] = u.Hostname()
	u.Host = api.addr
	hook["url"] = u.String()
	authz["credentials_file"] = filepath.Join(dir, sample.tokenPath)
	tlsConfig["ca_file"] = filepath.Join(dir, sample.caPath)
	conf["route"] = map[string]any{
		"receiver": receiver["name"], "group_by": []string{"alertname", "instance"},
		"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
	}
	out, err := yaml.Marshal(conf)
	must(t, err)
	am := startAlertmanager(t, string(out))

	instance := fmt.Sprintf("docs-%d", time.Now().UnixNano())
	body := fmt.Sprintf(`[{"labels":{"alertname":"HighLatency","service":"gateway","env":"prod","severity":"critical","instance":%q},
"annotations":{"summary":"p95 above 300ms"},"startsAt":%q}]`, instance, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	resp, err := http.Post(am+"/api/v2/alerts", "application/json", strings.NewReader(body)) //nolint:noctx // test
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Alertmanager refused the alert: %d", resp.StatusCode)
	}
	gomega.NewWithT(t).Eventually(func() error {
		for _, a := range alerts(t, target) {
			if a.Spec.Labels["instance"] == instance {
				if a.Spec.Service != "gateway" || a.Spec.Source != "alertmanager/"+receiver["name"].(string) {
					return fmt.Errorf("the Alert arrived as %+v", a.Spec)
				}
				return nil
			}
		}
		return fmt.Errorf("no Alert of instance %s in namespace %s yet", instance, target)
	}, amDeliver, poll).Should(gomega.Succeed())
}
