// Command provisioner is the test cluster's default StorageClass: it gives every claim a folder
// on this node, served to the pod as a hostPath volume, the way minikube's storage-provisioner
// and kind's local-path-provisioner do. Like theirs, each folder is made world-writable
// (mode 0777), because the kubelet does not apply a pod's fsGroup to hostPath volumes: a pod
// running as a non-root user could not write to a root-owned folder otherwise. (The
// controller-manager's built-in host-path provisioner makes root-owned 0750 folders, which is
// why it is not used.) Reclaim policy Delete removes the folder with its volume.
//
// It runs on the host beside the kubelet, with its own kubeconfig:
//
//	provisioner -kubeconfig FILE -root /tmp/hostpath-provisioner -name moscow-time.local/hostpath
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

type hostPath struct {
	root string
}

// folder is where a claim's data lives: ROOT/<namespace>/<claim>, as in minikube.
func (p hostPath) folder(namespace, claim string) string {
	return filepath.Join(p.root, namespace, claim)
}

func (p hostPath) Provision(_ context.Context, o controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	dir := p.folder(o.PVC.Namespace, o.PVC.Name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("creating %s: %w", dir, err)
	}
	// MkdirAll's mode passes through the umask; the folder must be writable by any user.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("making %s world-writable: %w", dir, err)
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   o.PVC.Spec.AccessModes,
			Capacity: v1.ResourceList{
				v1.ResourceStorage: o.PVC.Spec.Resources.Requests[v1.ResourceStorage],
			},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: dir},
			},
		},
	}
	return pv, controller.ProvisioningFinished, nil
}

func (p hostPath) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.HostPath == nil {
		return errors.New("not a hostPath volume")
	}
	dir := filepath.Clean(pv.Spec.HostPath.Path)
	// Only ever remove a folder this provisioner made.
	if !strings.HasPrefix(dir, p.root+string(filepath.Separator)) {
		return &controller.IgnoredError{Reason: dir + " is not under " + p.root}
	}
	return os.RemoveAll(dir)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	root := flag.String("root", "/tmp/hostpath-provisioner", "folder holding every volume")
	name := flag.String("name", "moscow-time.local/hostpath", "provisioner name, as in the StorageClass")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "provisioner: -kubeconfig is required")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("reading %s: %v", *kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p := hostPath{root: filepath.Clean(*root)}
	controller.NewProvisionController(ctx, client, *name, p, controller.LeaderElection(false)).Run(ctx)
}
