"""What every service hook shares: connection reading, client building, form metadata, test_connection."""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

from airflow.sdk.log import mask_secret

from airflow_provider_modelreg.get_provider_info import connection_type
from airflow_provider_modelreg.http import (
    ApiRequest,
    ApiResponse,
    RetryPolicy,
    ServiceClient,
    ServiceError,
)
from airflow_provider_modelreg.version_compat import FORM_FROM_PROVIDER_INFO, BaseHook, aget_connection

if TYPE_CHECKING:
    from airflow.sdk import Connection


def connection_extras(conn: Connection) -> dict[str, Any]:
    """The connection's extra fields, accepting the UI's ``extra__<type>__<name>`` prefixed form too."""
    extras = dict(conn.extra_dejson or {})
    prefix = f"extra__{conn.conn_type}__"
    for key in list(extras):
        if key.startswith(prefix):
            extras.setdefault(key[len(prefix) :], extras.pop(key))
    return {k: v for k, v in extras.items() if v not in (None, "")}


def split_user_info(host: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """(host without user-info, (user, password) or None): ``http://user:pw@h`` -> ``http://h``, credentials."""
    if not host or "@" not in host:
        return host, None
    parts = urlsplit(host if "://" in host else f"//{host}")
    if "@" not in parts.netloc:
        return host, None
    user_info, _, authority = parts.netloc.rpartition("@")
    user, _, password = user_info.partition(":")
    stripped = urlunsplit(parts._replace(netloc=authority))
    return (stripped if "://" in host else stripped.removeprefix("//")), (unquote(user), unquote(password))


def base_url_of(host: str | None, default: str, *, port: int | None = None, scheme: str = "https") -> str:
    """Base URL from a connection's host (which may be a full URL with a path) or the service default.

    A separate port goes into the authority (``h/mlflow`` + 5505 -> ``scheme://h:5505/mlflow``) unless
    the host names one. Credentials in the host (``user:pw@h``) are refused, naming only the rule: a
    hook that can use them as login and password takes them out with :func:`split_user_info` first.
    """
    if not host:
        return default.rstrip("/")
    if split_user_info(host)[1] is not None:
        raise ValueError(
            "connection host must not hold credentials (user:password@); put them in the login and password fields"
        )
    parts = urlsplit(host if "://" in host else f"{scheme}://{host}")
    try:
        has_port = parts.port is not None
    except ValueError:
        raise ValueError("connection host has an invalid port") from None
    netloc = parts.netloc if has_port or not port else f"{parts.netloc}:{port}"
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


class ModelRegHook(BaseHook):
    """Base of the provider's hooks: one :class:`ServiceClient` built from one Airflow connection.

    Subclasses give ``client_from_connection`` (pure: connection in, client out), so the sync hook and
    the async triggers build the same client; triggers call :meth:`aclient_for` to fetch the connection
    without blocking the triggerer's event loop.
    """

    conn_name_attr = "conn_id"
    conn_type: ClassVar[str]
    default_conn_name: ClassVar[str]
    hook_name: ClassVar[str]
    service: ClassVar[str]
    # What test_connection calls: a cheap read that needs valid credentials.
    probe_request: ClassVar[ApiRequest]

    def __init__(self, conn_id: str | None = None, retry: RetryPolicy | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self.retry = retry

    # -- form metadata, derived from get_provider_info's declarative conn-fields -------------------
    # One declaration (get_provider_info.CONNECTION_TYPES) serves every line's form: Airflow 3.2+ reads it
    # from the provider info itself; 3.0 and 3.1 call these two methods, and only when the registered hook
    # class defines them in its own ``__dict__`` (ProvidersManager._import_hook), so __init_subclass__ gives
    # each connection type's hook its own copy there. On 3.2+ they stay off the hooks: a hook defining them
    # draws Airflow's deprecation warning.
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "conn_type" in cls.__dict__ and not FORM_FROM_PROVIDER_INFO:
            cls.get_ui_field_behaviour = classmethod(ModelRegHook.get_ui_field_behaviour.__func__)  # type: ignore[method-assign]
            cls.get_connection_form_widgets = classmethod(ModelRegHook.get_connection_form_widgets.__func__)  # type: ignore[method-assign]

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        behaviour = connection_type(cls.conn_type)["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour.get("hidden-fields", [])),
            "relabeling": dict(behaviour.get("relabeling", {})),
            "placeholders": dict(behaviour.get("placeholders", {})),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The conn-fields as WTForms fields, for Airflow 3.0 and 3.1's connection form.

        Their API server turns these into the form's parameters through stand-ins for WTForms' String,
        Integer, Password and Boolean fields (3.1 brings the stand-ins itself; 3.0 needs ``wtforms``
        installed, which the FAB provider brings): label, description, default, enum and masking carry
        over. Those four classes are all the providers manager accepts, so a decimal number is a string
        field (the hooks parse numbers from text).
        """
        from wtforms import BooleanField, IntegerField, PasswordField, StringField
        from wtforms.validators import any_of

        try:
            from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        except ImportError:  # the React UI of 3.0 and 3.1 needs no FAB widget
            text_widget: Any = None
            password_widget: Any = None
        else:
            text_widget, password_widget = BS3TextFieldWidget(), BS3PasswordFieldWidget()
        widgets: dict[str, Any] = {}
        for name, field in connection_type(cls.conn_type)["conn-fields"].items():
            schema = field["schema"]
            types = schema.get("type", [])
            common: dict[str, Any] = {"description": field.get("description", "")}
            if schema.get("format") == "password":
                widgets[name] = PasswordField(field["label"], widget=password_widget, **common)
            elif "boolean" in types:
                widgets[name] = BooleanField(field["label"], default=schema.get("default"), **common)
            elif "integer" in types:
                widgets[name] = IntegerField(field["label"], default=schema.get("default"), **common)
            else:
                default = schema.get("default")
                enum = schema.get("enum")
                # An enum with a blank choice cannot be said to these forms: its description lists the values.
                validators = [any_of(enum)] if enum and None not in enum else []
                widgets[name] = StringField(
                    field["label"],
                    validators=validators,
                    default=None if default is None else str(default),
                    widget=text_widget,
                    **common,
                )
        return widgets

    # -- clients ------------------------------------------------------------------------------------
    @classmethod
    def client_from_connection(cls, conn: Connection, retry: RetryPolicy | None = None) -> ServiceClient:
        raise NotImplementedError

    @staticmethod
    def mask(*secrets: Any) -> None:
        """Register secrets with Airflow's masker so they never reach a log."""
        for secret in secrets:
            if secret:
                mask_secret(secret)

    @cached_property
    def client(self) -> ServiceClient:
        return self.client_from_connection(self.get_connection(self.conn_id), self.retry)

    def get_conn(self) -> ServiceClient:
        return self.client

    @classmethod
    async def aclient_for(cls, conn_id: str, retry: RetryPolicy | None = None) -> ServiceClient:
        """The connection fetched async, the client built in a worker thread: building one may load a
        private key (~30 ms of RSA parsing, then cached per credential), read key, config and token files,
        or call a token service, none of which may run in the triggerer's event loop."""
        conn = await aget_connection(conn_id)
        return await asyncio.to_thread(cls.async_client_from_connection, conn, retry)

    @classmethod
    def async_client_from_connection(cls, conn: Connection, retry: RetryPolicy | None = None) -> ServiceClient:
        """``client_from_connection`` with what its first async send loads done too; for a worker thread."""
        return cls.client_from_connection(conn, retry).prepare_for_async()

    def request(self, req: ApiRequest) -> ApiResponse:
        return self.client.request(req)

    def probe(self) -> ApiRequest:
        """The cheap authenticated read test_connection makes; override when it needs the connection."""
        return self.probe_request

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.request(self.probe())
        except ServiceError as exc:
            return False, str(exc)
        except Exception as exc:  # a bad connection definition: report it, never raise from the UI
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {self.hook_name} at {self.client.base_url}"
