# Where deploys run: self-hosted GitHub Actions runners (and AWX's execution nodes) inside the environment's VPC,
# in its private subnets. The EKS API endpoint is private only, so nothing outside the VPC reaches it: GitHub's
# hosted runners have no route in. The runners register with the label below; the deploy, rollback and rotation
# jobs ask for it in `runs-on` (tests/unit/test_deploy_route.py holds the two together). A job's AWS identity is
# the role it assumes through GitHub's OIDC token (modules/pipeline_identity), never the runner's own.

resource "aws_security_group" "runners" {
  #checkov:skip=CKV2_AWS_5:The runners and AWX's execution nodes attach it; they are registered with GitHub and AWX outside this stack.
  name        = "${var.name}-deploy-runners"
  description = "Self-hosted deploy runners: no inbound; HTTPS out (GitHub, AWS APIs, the EKS API), PostgreSQL"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-deploy-runners", "colors.io/runner-label" = var.label }
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.runners.id
  description       = "HTTPS: GitHub (job queue, OIDC), AWS APIs through the NAT gateways, the EKS API endpoint"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "cluster_api" {
  security_group_id            = var.cluster_security_group_id
  description                  = "Kubernetes API from the deploy runners"
  referenced_security_group_id = aws_security_group.runners.id
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
}

# The database login's rotation (rotate-secrets.yml) connects from here to PostgreSQL; the database admits this group.
resource "aws_vpc_security_group_egress_rule" "database" {
  security_group_id            = aws_security_group.runners.id
  description                  = "PostgreSQL: the rotation of the application's database login"
  referenced_security_group_id = var.database_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}
