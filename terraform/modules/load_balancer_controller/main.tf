# The identity of the AWS Load Balancer Controller, which registers the Colors pods in the ALB's target group
# through a TargetGroupBinding: Terraform owns the load balancer, its listeners, the target group and the security
# groups, so the controller needs only to read them and to register and deregister targets in that one group. It
# gets the role through Pod Identity (the eks-pod-identity-agent add-on), as kube-system/aws-load-balancer-controller.

module "role" {
  source = "../service_role"

  name           = "${var.name}-load-balancer-controller"
  services       = ["pods.eks.amazonaws.com"]
  assume_actions = ["sts:AssumeRole", "sts:TagSession"]
  inline_policies = {
    target-group-binding = data.aws_iam_policy_document.this.json
  }
}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_356:Describe calls of EC2 and Elastic Load Balancing have no resource-level permissions.
  statement {
    sid = "ReadTheLoadBalancerAndTheNetwork"
    actions = ["elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
      "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeTags", "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
    "ec2:DescribeNetworkInterfaces", "ec2:DescribeInstances", "ec2:DescribeAvailabilityZones"]
    resources = ["*"]
  }
  statement {
    sid       = "RegisterThePodsInTheTargetGroup"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = [var.target_group_arn]
  }
}

resource "aws_eks_pod_identity_association" "this" {
  count = var.pod_identity ? 1 : 0

  cluster_name    = var.cluster_name
  namespace       = "kube-system"
  service_account = "aws-load-balancer-controller"
  role_arn        = module.role.arn
}
