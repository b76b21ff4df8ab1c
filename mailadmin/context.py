from mailadmin.roles import Role, role_of


def console(request):
    role = role_of(request.user) if hasattr(request, "user") else None
    return {
        "user_role": role.group_name if role else "",
        "can_operate": role is not None and role >= Role.OPERATOR,
        "can_administer": role is not None and role >= Role.ADMINISTRATOR,
    }
