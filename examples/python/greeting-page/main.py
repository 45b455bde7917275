import os

import jinja2

HERE = os.path.dirname(__file__)
ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=True)
TEMPLATE = ENV.get_template("page.html.j2")


def handler(event, context):
    html = TEMPLATE.render(name=event.get("name", "world"), items=event.get("items", []))
    return {"html": html, "jinja2": jinja2.__version__}
