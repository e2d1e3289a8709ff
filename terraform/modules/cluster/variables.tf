variable "name" {
  description = "Name of the EKS cluster (colors-<environment>)."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and the nodes (the same minor as the local platform)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the control plane network interfaces and the nodes."
  type        = list(string)
}

variable "api_allowed_cidrs" {
  description = "CIDR blocks that reach the private API endpoint (the VPC, the CI runners' network)."
  type        = list(string)
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
}

variable "node_min_size" {
  description = "Fewest nodes."
  type        = number
}

variable "node_desired_size" {
  description = "Nodes the group runs (Terraform's: no node autoscaler; between node_min_size and node_max_size)."
  type        = number
}

variable "node_max_size" {
  description = "Most nodes."
  type        = number
}

variable "node_disk_size_gb" {
  description = "Root volume size of each node."
  type        = number
}

variable "log_retention_days" {
  description = "Days the control plane logs are kept."
  type        = number
}

variable "kms_key_arn" {
  description = "KMS key for envelope encryption of Kubernetes Secrets."
  type        = string
}

variable "log_kms_key_arn" {
  description = "KMS key of the control plane log group; its key policy must let CloudWatch Logs use it."
  type        = string
}

variable "access_entries" {
  description = "Authentication mode API with access entries (false only against an EKS API without them: moto)."
  type        = bool
}

variable "addons" {
  description = "Install the EKS managed add-ons (false only against an EKS API without them: moto)."
  type        = bool
}

variable "addon_versions" {
  description = "Version of each EKS add-on for the cluster's Kubernetes minor (inventories/sources.yml, eks_addons)."
  type        = map(string)

  validation {
    condition = length(setsubtract(
      ["vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver", "metrics-server"],
    keys(var.addon_versions))) == 0
    error_message = "Pin every add-on (vpc-cni, kube-proxy, eks-pod-identity-agent, coredns, aws-ebs-csi-driver, metrics-server) for the cluster's Kubernetes minor in inventories/sources.yml (eks_addons)."
  }
}
