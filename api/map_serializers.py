"""What the map, class file and listener endpoints send and take. Output: the rows as the pages
show them; input: plain strings (api.serializers.RawText), judged by mailadmin.maps and
mailadmin.listeners alone so a refusal reads as the page's."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from api.serializers import RawText
from mailadmin import listeners
from mailadmin.models import Listener, MapEntry


class MapFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The file's fixed name in the instance's conf directory.")
    title = serializers.CharField()
    kind = serializers.CharField(help_text="aliases, database (makemap hash) or class (one word a line).")
    managed = serializers.BooleanField(
        help_text="Builds write this file from its rows (even when empty); false: the host's own file stays."
    )
    rows = serializers.IntegerField(help_text="Typed rows.")
    kept = serializers.IntegerField(help_text="Blocks of imported text kept as they were.")
    key_label = serializers.CharField()
    value_label = serializers.CharField(help_text="Empty for class files: a row is one word.")
    feature = serializers.CharField(allow_null=True, help_text="The FEATURE without which sendmail never reads it.")
    read_by = serializers.CharField(help_text="How sendmail comes to read the file.")
    compiled_with = serializers.CharField(help_text="newaliases, makemap hash, or empty (read as text).")
    rows_url = serializers.CharField()
    text_url = serializers.CharField()


class MapEntrySerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    kept = serializers.SerializerMethodField(
        help_text="Imported text the console does not model (comments, blank lines, other forms), in `verbatim` "
        "byte for byte: it can be deleted, not edited."
    )

    class Meta:
        model = MapEntry
        fields = ["id", "url", "position", "kept", "key", "value", "comment", "verbatim", "updated"]

    def get_url(self, entry) -> str:
        return reverse("api:map_row", args=[entry.server.name, entry.map, entry.pk])

    def get_kept(self, entry) -> bool:
        return bool(entry.verbatim)


class MapRowChangeSerializer(serializers.Serializer):
    """A typed row; PATCH may leave fields out (they keep their stored values)."""

    key = RawText(help_text="Checked as the map's page checks it (local part, user@domain, domain …).")
    value = RawText(required=False, default="", help_text="Empty for class files.")
    comment = RawText(required=False, default="", help_text="One line of plain ASCII, written as `# …` above the row.")


class MapTextSerializer(serializers.Serializer):
    name = serializers.CharField()
    managed = serializers.BooleanField()
    text = serializers.CharField(allow_blank=True, help_text="The file as the next build writes it.")


class ListenerSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    kind = serializers.CharField(help_text="daemon (DAEMON_OPTIONS, accepts mail) or client (CLIENT_OPTIONS).")
    mc_line = serializers.SerializerMethodField(help_text="The .mc line a build writes for it.")

    class Meta:
        model = Listener
        fields = [
            "id", "url", "kind", "position", "name", "family", "port", "address", "modifiers", "extra", "comment",
            "mc_line", "updated",
        ]  # fmt: skip

    def get_url(self, row) -> str:
        return reverse("api:listener", args=[row.server.name, row.pk])

    def get_mc_line(self, row) -> str:
        return listeners.spec_of(row).mc_line()


class ListenerChangeSerializer(serializers.Serializer):
    """A listener's fields as the listeners page takes them; an empty field is left out of the line."""

    kind = RawText(required=False, default="", help_text="daemon or client (to add; a row keeps its kind).")
    name = RawText(required=False, default="", help_text="Name=")
    family = RawText(required=False, default="", help_text="Family=: inet or inet6.")
    port = RawText(required=False, default="", help_text="Port=: a number or a service name.")
    address = RawText(required=False, default="", help_text="Addr=: an IP address; empty = every address.")
    modifiers = RawText(required=False, default="", help_text="M=: letters such as a, b, E, h.")
    extra = RawText(required=False, default="", help_text="Other Key=value pairs, comma-separated.")
    comment = RawText(required=False, default="")
