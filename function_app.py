"""The Azure Functions entry point: registers the blueprints in functions/. Nothing heavy happens here."""

import azure.functions as func

from functions.blob_ingest import bp as blob_ingest
from functions.http_api import bp as http_api
from functions.retrain import bp as retrain
from functions.shadow import bp as shadow

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(blob_ingest)
app.register_functions(http_api)
app.register_functions(retrain)
app.register_functions(shadow)
