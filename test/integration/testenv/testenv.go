// Package testenv starts the real kube-apiserver and etcd that hack/ built
// and installs alertbridge into them exactly as config/default ships it:
// CRDs, the operator's namespace, ServiceAccount and ClusterRole, the user
// roles and the admission policies. Tests then run the operator as that
// ServiceAccount (a TokenRequest token, not cluster admin) with the binary's
// own client limits, so RBAC and the admission policies judge every write the
// operator makes, and users act through the shipped roles.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
)

// The control planes hack/envtest-binaries.sh builds. K8sVersion is the
// one every suite runs against; FloorK8sVersion is the oldest Kubernetes
// the shipped manifests support (their MutatingAdmissionPolicies are
// admissionregistration.k8s.io/v1, served from 1.36), which the install
// tests run against too. Chart.yaml's kubeVersion names the same floor.
const (
	K8sVersion      = "1.37.2"
	FloorK8sVersion = "1.36.3"
)

// The kustomizations tests install, relative to the module root.
const (
	// DefaultInstall is what users install: the operator with the
	// PostgreSQL mirror required, and so the mirror finalizer's admission
	// policy.
	DefaultInstall = "config/default"
	// WithoutMirrorInstall is the same install without the mirror
	// (--mirror=off, no finalizer policy): suites that run the operator
	// with the mirror off install this.
	WithoutMirrorInstall = "config/without-mirror"
	// MirrorFinalizerComponent is the component DefaultInstall includes and
	// WithoutMirrorInstall leaves out (see InstallMirrorFinalizer).
	MirrorFinalizerComponent = "config/components/mirror-finalizer"
)

// operatorTokenLifetime outlasts any suite; a real pod's projected token
// is refreshed by the kubelet, which envtest does not run.
const operatorTokenLifetime = 24 * time.Hour

// Root is the module root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// AssetsDir is where the control plane binaries are: KUBEBUILDER_ASSETS
// when set, else bin/k8s/<version>-<os>-<arch>.
func AssetsDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	return AssetsDirFor(K8sVersion)
}

// UseBinaries makes env run the control plane binaries in assets. envtest
// lets KUBEBUILDER_ASSETS win over BinaryAssetsDirectory, which would run
// the current version where a test asked for another.
func UseBinaries(env *envtest.Environment, assets string) {
	env.BinaryAssetsDirectory = assets
	api := env.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(assets, "kube-apiserver")
	if env.ControlPlane.Etcd == nil {
		env.ControlPlane.Etcd = &envtest.Etcd{}
	}
	env.ControlPlane.Etcd.Path = filepath.Join(assets, "etcd")
	env.ControlPlane.KubectlPath = filepath.Join(assets, "kubectl")
}

// AssetsDirFor is where the control plane of Kubernetes version is:
// bin/k8s/<version>-<os>-<arch>, as hack/envtest-binaries.sh puts it.
func AssetsDirFor(version string) (string, error) {
	d := filepath.Join(Root(), "bin", "k8s", fmt.Sprintf("%s-%s-%s", version, runtime.GOOS, runtime.GOARCH))
	if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no kube-apiserver %s in %s: run `make envtest envtest-floor` (or K8S_VERSION=%s hack/envtest-binaries.sh) first", version, d, version)
	}
	return d, nil
}

// Env is a running control plane with alertbridge installed.
type Env struct {
	*envtest.Environment
	// Admin is a cluster administrator: tests prepare and assert with it.
	Admin *rest.Config
	// Operator authenticates as the controller manager's ServiceAccount
	// with a TokenRequest token, under the shipped ClusterRole, with the
	// client limits of `alertbridge run`.
	Operator *rest.Config
	// API authenticates as the HTTP API's ServiceAccount the same way, with
	// the client limits of `alertbridge serve`.
	API *rest.Config
	// Install says where config/ installed the operator.
	Install Install
}

// The Deployments config/ ships.
const (
	ManagerDeployment = "alertbridge-manager"
	APIDeployment     = "alertbridge-api"
)

// Install is where a kustomization put the operator: its namespace and the
// ServiceAccounts of the controller manager and of the HTTP API.
type Install struct {
	Namespace         string
	ServiceAccount    string
	APIServiceAccount string
}

// Username is the controller manager's Kubernetes user name.
func (i Install) Username() string { return serviceaccount.MakeUsername(i.Namespace, i.ServiceAccount) }

// APIUsername is the HTTP API's Kubernetes user name.
func (i Install) APIUsername() string {
	return serviceaccount.MakeUsername(i.Namespace, i.APIServiceAccount)
}

// Start starts a control plane and installs config/default into it.
func Start() (*Env, error) { return StartWith(DefaultInstall) }

// StartWith starts a control plane and installs the kustomization at dir
// (relative to the module root).
func StartWith(dir string) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	return StartOn(assets, dir)
}

// StartOn is StartWith on the control plane binaries in assets (see
// AssetsDirFor).
func StartOn(assets, dir string) (*Env, error) {
	objs, err := Build(filepath.Join(Root(), dir))
	if err != nil {
		return nil, err
	}
	return startWithObjects(assets, objs)
}

// StartWithObjects starts a control plane and installs objs, a rendered
// install (e.g. dist/install.yaml for another namespace), as StartWith
// installs a kustomization. The CRDs are config/crd/bases'.
func StartWithObjects(objs []*unstructured.Unstructured) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	return startWithObjects(assets, objs)
}

func startWithObjects(assets string, objs []*unstructured.Unstructured) (*Env, error) {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	UseBinaries(env, assets)
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start envtest: %w", err)
	}
	e := &Env{Environment: env, Admin: kube.WithCLILimits(rest.CopyConfig(cfg))}
	if err := e.install(objs); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) install(objs []*unstructured.Unstructured) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(e.Admin, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		return err
	}
	var rest []*unstructured.Unstructured
	for _, u := range objs {
		switch u.GetKind() {
		case "CustomResourceDefinition":
			continue // envtest installed them and waited for them to be served
		case "Deployment":
			e.Install.Namespace = u.GetNamespace()
			switch u.GetName() {
			case ManagerDeployment:
				e.Install.ServiceAccount = deploymentServiceAccount(u)
			case APIDeployment:
				e.Install.APIServiceAccount = deploymentServiceAccount(u)
			}
		}
		rest = append(rest, u)
	}
	if e.Install.ServiceAccount == "" || e.Install.APIServiceAccount == "" {
		return fmt.Errorf("the kustomization installs no %s and %s Deployments with a serviceAccountName", ManagerDeployment, APIDeployment)
	}
	if err := Apply(ctx, c, rest...); err != nil {
		return err
	}
	if err := WaitForPolicies(ctx, c); err != nil {
		return err
	}
	if err := waitForDiscovery(ctx, e.Admin); err != nil {
		return err
	}
	if err := waitForMutationSchemas(ctx, c); err != nil {
		return err
	}
	e.Operator, err = e.serviceAccountConfig(ctx, e.Install.Namespace, e.Install.ServiceAccount)
	if err != nil {
		return err
	}
	kube.WithOperatorLimits(e.Operator)
	if e.API, err = e.serviceAccountConfig(ctx, e.Install.Namespace, e.Install.APIServiceAccount); err != nil {
		return err
	}
	kube.WithOperatorLimits(e.API)
	groups := serviceaccount.MakeGroupNames(e.Install.Namespace)
	if err := waitForRBAC(ctx, e.Admin, e.Install.Username(), groups); err != nil {
		return err
	}
	return waitForRBAC(ctx, e.Admin, e.Install.APIUsername(), groups)
}

func deploymentServiceAccount(u *unstructured.Unstructured) string {
	sa, _, _ := unstructured.NestedString(u.Object, "spec", "template", "spec", "serviceAccountName")
	return sa
}

// serviceAccountConfig authenticates as the ServiceAccount with a token from
// the TokenRequest API, as a pod's projected token would.
func (e *Env) serviceAccountConfig(ctx context.Context, ns, name string) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(e.Admin)
	if err != nil {
		return nil, err
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(operatorTokenLifetime.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to request a token for ServiceAccount %s/%s: %w", ns, name, err)
	}
	cfg := rest.AnonymousClientConfig(e.Admin)
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// ServiceAccountConfig is a client config authenticating as a ServiceAccount
// (which must exist) with a TokenRequest token and the CLI's limits.
func (e *Env) ServiceAccountConfig(ns, name string) (*rest.Config, error) {
	cfg, err := e.serviceAccountConfig(context.Background(), ns, name)
	if err != nil {
		return nil, err
	}
	return kube.WithCLILimits(cfg), nil
}

// As is a client config for user (in groups) through impersonation, with
// the CLI's limits: what that user's kubectl or alertbridge would send.
func (e *Env) As(user string, groups ...string) *rest.Config {
	cfg := rest.CopyConfig(e.Admin)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	return cfg
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.Environment.Stop() }

// Kubeconfig writes cfg (a token or client-certificate config, without
// impersonation) as a kubeconfig file a binary can be started with.
func Kubeconfig(cfg *rest.Config, user string) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{
		Token: cfg.BearerToken, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData,
	}
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: user}
	kc.CurrentContext = user
	return clientcmd.Write(*kc)
}

// waitForDiscovery returns once the API server's discovery serves every
// alertbridge kind: envtest waits for the CRDs to be established, and a
// client that discovers a moment before discovery catches up gets "no
// matches for kind" (seen in the CLI specs).
func waitForDiscovery(ctx context.Context, cfg *rest.Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	want := []string{"alerts", "incidents", "slopolicies", "alertroutingpolicies", "silences", "receivers"}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		list, err := dc.ServerResourcesForGroupVersion(v1.GroupVersion.String())
		if err != nil {
			return false, nil
		}
		served := map[string]bool{}
		for _, r := range list.APIResources {
			served[r.Name] = true
		}
		for _, name := range want {
			if !served[name] {
				return false, nil
			}
		}
		return true, nil
	})
}

// waitForMutationSchemas returns once the API server's
// MutatingAdmissionPolicies can patch the kinds they match (the mirror
// finalizer's Alerts, Incidents and SLOPolicies; the Silence creator's
// Silences): their dispatcher learns each CRD's schema a moment after the
// CRD is served and answers 503 "Resource kind … not found. There can be a
// delay …" until then (seen in the CLI specs). Dry-run creates, as the
// admin, of each kind; any answer but that one will do.
func waitForMutationSchemas(ctx context.Context, c client.Client) error {
	ns := metav1.NamespaceDefault
	probes := []client.Object{
		&v1.Alert{ObjectMeta: metav1.ObjectMeta{GenerateName: "schema-probe-", Namespace: ns},
			Spec: v1.AlertSpec{Service: "probe", Kind: "probe", Title: "probe"}},
		&v1.Incident{ObjectMeta: metav1.ObjectMeta{GenerateName: "schema-probe-", Namespace: ns},
			Spec: v1.IncidentSpec{Service: "probe", Title: "probe", Severity: v1.SeverityP3, State: v1.IncidentOpen}},
		&v1.Silence{ObjectMeta: metav1.ObjectMeta{GenerateName: "schema-probe-", Namespace: ns},
			Spec: v1.SilenceSpec{Matchers: []v1.SilenceMatcher{{Name: "service", Operator: v1.MatchEqual, Value: "probe"}},
				EndsAt: metav1.NewTime(time.Now().Add(time.Hour)), Comment: "probe"}},
		// Mutation comes before schema validation: an empty spec is probe
		// enough.
		&v1.SLOPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "schema-probe-", Namespace: ns}},
	}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, o := range probes {
			err := c.Create(ctx, o.DeepCopyObject().(client.Object), client.DryRunAll)
			if apierrors.IsServiceUnavailable(err) && strings.Contains(err.Error(), "There can be a delay") {
				return false, nil
			}
		}
		return true, nil
	})
}
