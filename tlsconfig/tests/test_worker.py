"""Generation jobs on the real Celery worker and Redis, dispatched from the console as in production."""

from mailadmin.work import WorkStatus
from testing.processes import wait_for
from tlsconfig.models import TlsJob


def test_a_ca_generated_from_the_console_is_made_by_the_worker(worker, mta_server, administrator, client):
    client.force_login(administrator)
    response = client.post(
        f"/servers/{mta_server.name}/tls/generate/",
        {"kind": "ca", "common_name": "Worker CA", "key_type": "ec256", "days": "30"},
    )
    assert response.status_code == 302
    job = TlsJob.objects.get()

    wait_for(lambda: TlsJob.objects.get(pk=job.pk).finished, 30, "the worker to finish the job")

    job.refresh_from_db()
    assert job.status == WorkStatus.DONE, (job.error, worker.log()[-3000:])
    assert job.attempt == 1 and job.dispatched_at is not None
    assert job.certificate.cn_subject == "Worker CA" and job.certificate.private_key is not None
    page = client.get(f"/tls/jobs/{job.pk}/progress/")
    assert page.status_code == 286 and "Worker CA" in page.content.decode()
