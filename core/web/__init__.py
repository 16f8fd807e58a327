"""The faces of Relais: one blueprint module per area of the clinic's staff pages (home,
patients, patient_contact, messages, staff, settings, audit), patients' own pages (patient),
the links in messages (consent), login (auth), the REST API (api), the operator console
(console), the CLI (cli) and demo seeding (demo).

Who may open a staff page is :mod:`core.web.staff_access`.
"""
