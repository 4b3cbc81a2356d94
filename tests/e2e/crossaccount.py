"""The two-account config (EXP exports, IMP imports) shared by the
cross-worker import tests; with 2 workers the two land on different workers."""

CONF = """
accounts {
  EXP: {
    users: [ {user: exp, password: exp} ]
    exports: [ {stream: "a.>"}, {service: "svc.x"} ]
  }
  IMP: {
    users: [ {user: imp, password: imp} ]
    imports: [
      {stream: {account: EXP, subject: "a.>"}, prefix: "from"}
      {service: {account: EXP, subject: "svc.x"}, to: "x"}
    ]
  }
}
"""
