"""mediasvc LTI 1.3 tool: platform registrations, OIDC launches, deep linking, JWKS."""
