"""Vaccination: centres, vaccines with their dose schedule, both doses booked at once.

See docs/vaccination.md. Other features may use :func:`.booking.doses_of` and the models;
bookings are made through :func:`.booking.book`, which takes both places or neither.
"""
