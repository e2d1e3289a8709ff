# The public entry: DNS zone and certificate of the dashboard, an internet-facing ALB behind AWS WAF (protection.tf)
# that speaks TLS 1.2+ only, redirects HTTP to HTTPS, logs every request, and forwards to the Colors pods (IP
# targets, registered by the AWS Load Balancer Controller's TargetGroupBinding) whose /readyz decides who gets
# traffic.

resource "aws_route53_zone" "this" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing needs an asymmetric KMS key in us-east-1 and a DS record in the parent zone, which this project does not own.
  #checkov:skip=CKV2_AWS_39:Query logging is not collected: the ALB access and the application logs carry every request.
  name    = var.domain_name
  comment = "Colors dashboard (${var.name})"
}

resource "aws_acm_certificate" "this" {
  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = {
    for option in aws_acm_certificate.this.domain_validation_options : option.domain_name => option
  }

  zone_id = aws_route53_zone.this.zone_id
  name    = each.value.resource_record_name
  type    = each.value.resource_record_type
  records = [each.value.resource_record_value]
  ttl     = 300
}

# ACM validates through the zone only once the parent zone delegates to it (the name_servers output). Before that,
# waiting for validation would hold the apply until it times out: the first apply of an environment runs with
# dns_zone_delegated = false and ends with the name servers to delegate; the next one validates and listens on 443.
resource "aws_acm_certificate_validation" "this" {
  count = var.dns_zone_delegated ? 1 : 0

  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [for record in aws_route53_record.validation : record.fqdn]
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Public load balancer: HTTPS and the HTTP redirect from anywhere, out to the Colors pods only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  #checkov:skip=CKV_AWS_260:Port 80 is open to the internet on purpose: its only listener redirects to HTTPS.
  for_each = { https = 443, http = 80 }

  security_group_id = aws_security_group.alb.id
  description       = "${upper(each.key)} from the internet"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
}

# The path from the load balancer to the pods, both ways: out of the ALB's group to the pods' group, and into the pods'
# group (the Colors pods' own, given to their ENIs by security groups for pods: modules/app_pods) from the ALB's.
# Without the second rule every forwarded request timed out and the ALB answered 503.
resource "aws_vpc_security_group_egress_rule" "alb_to_pods" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Colors pods (their own security group)"
  referenced_security_group_id = var.pods_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
}

resource "aws_vpc_security_group_ingress_rule" "pods_from_alb" {
  security_group_id            = var.pods_security_group_id
  description                  = "Colors pods from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
}

resource "aws_lb" "this" {
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  access_logs {
    bucket  = aws_s3_bucket.access_logs.id
    enabled = true
  }

  # The load balancer checks that it may write to the bucket when logging is turned on.
  depends_on = [aws_s3_bucket_policy.access_logs]
}

resource "aws_lb_target_group" "app" {
  name        = "${var.name}-app"
  vpc_id      = var.vpc_id
  target_type = "ip"
  protocol    = "HTTP"
  port        = var.app_port

  # A leaving pod drains for as long as the ALB does: its shutdown delay plus its graceful timeout (the inventories'
  # app_release_* values; tests/unit/test_shutdown_timing.py holds them together).
  deregistration_delay = var.deregistration_delay_seconds

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "https" {
  count = var.dns_zone_delegated ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.this[0].certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_route53_record" "dashboard" {
  zone_id = aws_route53_zone.this.zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
