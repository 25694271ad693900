from tests.factories import make_customer, make_invoice


def test_issue_smoke(db, system_principal):
    customer = make_customer()
    invoice = make_invoice(customer)
    assert invoice.status == "open"
    assert invoice.subtotal_minor == 2900
    assert invoice.tax_minor == 290
