"""The exports plugin: the clinic's patients as CSV, for an admin on the web and for an
operator on the command line."""

import csv
import io

from tests.worlds import make_patient


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_patient_csv_gives_each_patient_s_sex(app, clinic_fr, admin_client):
    make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand", sex="female")
    make_patient(app, clinic_fr, first_name="Paul", last_name="Martin", phone="0612345679")

    answer = admin_client.get("/exports/patients.csv")

    assert answer.status_code == 200
    header = answer.text.splitlines()[0]
    assert header.startswith("id,last_name,first_name,birth_date,sex,phone")
    assert [(r["last_name"], r["sex"]) for r in rows(answer.text)] == [
        ("Durand", "female"),
        ("Martin", ""),  # not given
    ]


def test_the_command_line_export_has_the_same_columns(app, clinic_fr, runner):
    make_patient(app, clinic_fr, first_name="Jeanne", last_name="Durand", sex="female")

    result = runner.invoke(args=["exports", "patients", "--tenant", clinic_fr.slug])

    assert result.exit_code == 0, result.output
    assert [r["sex"] for r in rows(result.stdout)] == ["female"]
    assert "1 patients exported." in result.stderr
